def gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return abs(a)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True


def digit_sum(n: int) -> int:
    total = 0
    n = abs(n)
    while n > 0:
        total += n % 10
        n //= 10
    return total


def collatz_steps(n: int) -> int:
    steps = 0
    while n > 1 and steps < 200:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def running_max(xs: list[int]) -> list[int]:
    out = []
    best = None
    for x in xs:
        if best is None or x > best:
            best = x
        out.append(best)
    return out


def binary_search(xs: list[int], target: int) -> int:
    xs = sorted(xs)
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


def to_base(n: int, base: int) -> str:
    if base < 2 or base > 16:
        raise ValueError("base must be in 2..16")
    digits = "0123456789abcdef"
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    out = ""
    while n:
        out = digits[n % base] + out
        n //= base
    return sign + out


def mean_and_spread(xs: list[float]) -> tuple:
    if not xs:
        return 0.0, 0.0
    mean = sum(xs) / len(xs)
    spread = max(xs) - min(xs)
    return round(mean, 3), round(spread, 3)


EXAMPLES = {
    "gcd": ["12, 18", "7, 0", "-4, 6"],
    "is_prime": ["7", "1", "91"],
    "digit_sum": ["1234", "-56"],
    "collatz_steps": ["6", "27"],
    "fib": ["5", "0"],
    "running_max": ["[3, 1, 4, 1, 5]", "[]"],
    "binary_search": ["[5, 1, 4], 4", "[2, 8], 3"],
    "to_base": ["10, 2", "255, 16", "-7, 3"],
    "mean_and_spread": ["[1.5, 2.0, 4.0]", "[]"],
}
