import sys

PAIRS = {")": "(", "]": "[", "}": "{"}


def balanced(text):
    stack = []
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif not stack or stack.pop() != PAIRS[ch]:
            return False
    return not stack


lines = sys.stdin.read().split("\n")
q = int(lines[0])
for line in lines[1:1 + q]:
    print("YES" if balanced(line.strip()) else "NO")
