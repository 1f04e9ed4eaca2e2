n = int(input())
values = list(map(int, input().split()))[:n]
print(sum(v for v in values if v % 2 == 0))
