def is_palindrome(s: str) -> bool:
    cleaned = [c.lower() for c in s if c.isalnum()]
    i, j = 0, len(cleaned) - 1
    while i < j:
        if cleaned[i] != cleaned[j]:
            return False
        i += 1
        j -= 1
    return True


def caesar(text: str, shift: int) -> str:
    out = []
    for ch in text:
        if ch.isalpha():
            base = ord("a") if ch.islower() else ord("A")
            out.append(chr((ord(ch) - base + shift) % 26 + base))
        else:
            out.append(ch)
    return "".join(out)


def word_frequencies(text: str) -> dict:
    counts = {}
    for word in text.lower().split():
        word = word.strip(".,!?")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def run_length(s: str) -> str:
    if not s:
        return ""
    out = []
    current, count = s[0], 1
    for ch in s[1:]:
        if ch == current:
            count += 1
        else:
            out.append(f"{count}{current}")
            current, count = ch, 1
    out.append(f"{count}{current}")
    return "".join(out)


def balanced(brackets: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in brackets:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def longest_common_prefix(words: list[str]) -> str:
    if not words:
        return ""
    prefix = words[0]
    for word in words[1:]:
        while not word.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def parse_key_values(line: str) -> dict:
    result = {}
    for part in line.split(";"):
        if "=" not in part:
            continue
        key, value = part.split("=", 1)
        key = key.strip()
        try:
            result[key] = int(value)
        except ValueError:
            result[key] = value.strip()
    return result


EXAMPLES = {
    "is_palindrome": ["'A man, a plan'", "'racecar'"],
    "caesar": ["'Hello, World', 3", "'xyz', -1"],
    "word_frequencies": ["'the cat and the hat'", "''"],
    "run_length": ["'aaabccdd'", "'x'"],
    "balanced": ["'([]{})'", "'(]'"],
    "longest_common_prefix": ["['flower', 'flow', 'flight']", "['a']"],
    "parse_key_values": ["'a=1; b = two; junk; c=3'"],
}
