"""Functions exercising the tracer: each is called by tests/test_tracer.py with the arguments in CASES."""

import functools


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def countdown(n):
    while n > 0:
        yield n
        n -= 1


def use_generator(n):
    total = 0
    for value in countdown(n):
        total += value
    return total, list(countdown(2))


def comprehensions(xs):
    squares = [x * x for x in xs if x % 2]
    table = {x: str(x) for x in xs}
    return sum(v for v in squares), sorted(table, key=lambda k: -k)


def risky(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 2


def caught(xs):
    out = []
    for x in xs:
        try:
            out.append(risky(x))
        except ValueError as e:
            out.append(str(e))
        finally:
            out.append("f")
    return out


def uncaught(x):
    y = x + 1
    return risky(-y)


def reraise_in_finally(x):
    try:
        return risky(x)
    finally:
        note = "cleanup"


class Account:
    def __init__(self, balance):
        self.balance = balance

    def deposit(self, amount):
        self.balance += amount
        return self.balance

    def __repr__(self):
        return f"Account({self.balance})"


def use_class(n):
    acct = Account(n)
    acct.deposit(5)
    return acct.deposit(1)


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


def bad_repr():
    thing = BadRepr()
    return thing


def huge():
    big = list(range(100000))
    text = "x" * 50000
    return len(big) + len(text)


def traced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@traced
def decorated(a, b=2, *rest, **named):
    return a + b + len(rest) + len(named)


def closure(n):
    def add(x):
        return x + n

    return add(1) + add(2)


def mutation(xs):
    xs.append(1)
    xs.append(2)
    ys = xs
    ys[0] = 99
    return xs


def fizz(n):
    out = []
    i = 1
    while i <= n:
        out.append("Fizz" if i % 3 == 0 else i)
        i += 1
    return out


CASES = [
    ("fact", "5"),
    ("use_generator", "3"),
    ("comprehensions", "[1, 2, 3, 4]"),
    ("caught", "[1, -2, 3]"),
    ("uncaught", "4"),
    ("reraise_in_finally", "-1"),
    ("reraise_in_finally", "2"),
    ("use_class", "10"),
    ("bad_repr", ""),
    ("huge", ""),
    ("decorated", "1, 2, 3, 4, k=5"),
    ("closure", "10"),
    ("mutation", "[0]"),
    ("fizz", "7"),
]
