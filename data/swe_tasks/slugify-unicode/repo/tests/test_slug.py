from textutil.slug import slugify


def test_basic():
    assert slugify('Hello World') == 'hello-world'


def test_punctuation():
    assert slugify('a, b; c!') == 'a-b-c'
