import sys

data = sys.stdin.read().split()
n = int(data[0])
values = [int(x) for x in data[1:1 + n]]
best = current = values[0]
for v in values[1:]:
    current = max(v, current + v)
    best = max(best, current)
print(best)
