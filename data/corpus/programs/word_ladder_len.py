from collections import deque


def neighbors(word, words):
    for i in range(len(word)):
        for ch in "abcdefghijklmnopqrstuvwxyz":
            candidate = word[:i] + ch + word[i + 1:]
            if candidate != word and candidate in words:
                yield candidate


start, goal = input().split()
words = set(input().split())
queue = deque([(start, 1)])
seen = {start}
answer = 0
while queue:
    word, dist = queue.popleft()
    if word == goal:
        answer = dist
        break
    for nxt in neighbors(word, words):
        if nxt not in seen:
            seen.add(nxt)
            queue.append((nxt, dist + 1))
print(answer)
