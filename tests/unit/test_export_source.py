from tests.exports import make_export


def test_x() -> None:
    """x."""
    assert make_export
