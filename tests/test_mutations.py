"""Mutations of the kinds mutate-fix tasks use: each edits only its node, parses, changes the AST, and its
inverse patch applies with git and gives the original file back."""

import ast
import subprocess
import textwrap

import pytest

from cwm_tasks.mutations import KINDS, mutations_of, unified_patch

SOURCE = textwrap.dedent(
    '''\
    """A module."""
    import os
    from math import sqrt


    def area(width, height):
        """Docstring stays."""
        scale = 2
        total = width * height  # a comment the edit keeps
        if not width or height < 0:
            return -1
        return total + scale


    def where(name):
        return os.path.join(name, str(sqrt(4)))
    '''
)


def test_every_kind_is_found_and_each_mutation_changes_only_its_node():
    found = mutations_of("pkg/shapes.py", SOURCE)
    assert {m.kind for m in found} == set(KINDS)
    assert len({m.key for m in found}) == len(found)  # every mutation has its own name
    by_change = {(m.kind, m.description): m.mutated for m in found}
    assert "    total = width / height  # a comment the edit keeps\n" in by_change[("binary_operator", "* -> /")]
    assert "    if not width and height < 0:\n" in by_change[("boolean_operator", "or -> and")]
    assert "    if (width) or height < 0:\n" in by_change[("unary_operator", "not removed")]
    assert "    if not width or height <= 0:\n" in by_change[("binary_operator", "< -> <=")]
    assert (
        "    total = height * width  # a comment the edit keeps\n"
        in by_change[("swap_variables", "width and height swapped")]
    )
    assert (
        "    return os.path.join(str(sqrt(4)), name)\n" in by_change[("reorder_arguments", "arguments 1 and 2 swapped")]
    )
    assert "    return os.path.join(name)\n" in by_change[("remove_argument", "argument 2 removed")]
    assert by_change[("remove_body", "area: body removed")].count('"""Docstring stays."""\n    pass\n') == 1
    assert "import os\n" not in by_change[("remove_import", "`import os` removed")]
    for mutation in found:
        ast.parse(mutation.mutated)
        changed = [
            i
            for i, (a, b) in enumerate(zip(SOURCE.splitlines(), mutation.mutated.splitlines(), strict=False))
            if a != b
        ]
        assert changed and changed[0] + 1 >= mutation.line - 1, mutation.key  # nothing above the node moves


def test_a_file_that_does_not_parse_has_no_mutations():
    assert mutations_of("broken.py", "def f(:\n") == []


@pytest.mark.parametrize("ending", ["\n", ""])
def test_the_inverse_patch_applies_with_git_and_restores_the_file(tmp_path, ending):
    source = SOURCE.rstrip("\n") + ending
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "pkg").mkdir()
    for mutation in mutations_of("pkg/shapes.py", source):
        (tmp_path / "pkg" / "shapes.py").write_text(mutation.mutated)
        patch = unified_patch("pkg/shapes.py", mutation.mutated, source)
        subprocess.run(["git", "apply", "-"], input=patch, text=True, cwd=tmp_path, check=True)
        assert (tmp_path / "pkg" / "shapes.py").read_text() == source, mutation.key
