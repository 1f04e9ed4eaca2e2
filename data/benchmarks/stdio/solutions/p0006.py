import sys
from collections import Counter

counts = Counter(sys.stdin.read().split())
word, count = min(counts.items(), key=lambda item: (-item[1], item[0]))
print(word, count)
