"""Checks: the one error an out-of-range option raises, and the one function that raises it.

Every hyperparameter check in numpynn is a `require(ok, name, value, fix)`. The error it raises carries the
three parts as fields, so an interface can say it in its own words without parsing text: the CLI writes
`--dev-size = 0 is out of range: ...`, the estimator names its own parameter. Imports nothing.
And whole_number: the one way a number typed by a user or sent by a client is read.
"""
from __future__ import annotations


def whole_number(text: str, low: int, high: int) -> int | None:
    """The whole number low..high that `text` writes in ASCII digits 0-9 (a number from a client or a flag), or
    None for anything else. Not str.isdigit() alone: it is also true of '²' and '٣', which int() then refuses
    or reads as another digit. The length is looked at before int() reads the text, so a huge number costs
    nothing."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None


class OptionError(ValueError):
    """An option (a hyperparameter, a size, a name) outside what it may be.

    name   what the user set, in the code's words (e.g. "dev_size", "lr", "X.shape")
    value  what they gave
    fix    how to fix it, one short sentence with an example
    str(error) is the one line "name = value is out of range: fix". It is a ValueError, so callers that catch
    ValueError keep working."""

    def __init__(self, name: str, value, fix: str):
        self.name, self.value, self.fix = name, value, fix
        super().__init__(f"{name} = {shown(value)} is out of range: {fix}")

    def renamed(self, name: str) -> "OptionError":
        """The same error under the name an interface uses (a flag, an estimator parameter)."""
        return OptionError(name, self.value, self.fix)


def require(ok: bool, name: str, value, fix: str) -> None:
    """Raise an OptionError naming an out-of-range option and how to fix it, unless ok."""
    if not ok:
        raise OptionError(name, value, fix)


def shown(value) -> str:
    """repr(value) for an error message; a whole number of more than 20 digits by its count of digits (a
    config file can hold any, and Python refuses to print one of more than 4300)."""
    if isinstance(value, int) and abs(value) >= 10**20:
        return f"a number of about {int(abs(value).bit_length() * 0.30103) + 1} digits"  # 0.30103: log10(2)
    return repr(value)
