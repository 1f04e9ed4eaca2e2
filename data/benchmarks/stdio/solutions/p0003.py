import bisect

n = int(input())
values = list(map(int, input().split()))[:n]
tails = []
for v in values:
    i = bisect.bisect_left(tails, v)
    if i == len(tails):
        tails.append(v)
    else:
        tails[i] = v
print(len(tails))
