"""Vietnamese text normalisation: written bulletin text → the words an announcer says."""

from tts.vi.normalize import DIALECTS, Normalized, Step, clean_unicode, explain, normalize, text_warnings
from tts.vi.numbers import Dialect, read_decimal, read_digits, read_int, read_ordinal

__all__ = [
    "DIALECTS",
    "Dialect",
    "Normalized",
    "Step",
    "clean_unicode",
    "explain",
    "normalize",
    "read_decimal",
    "read_digits",
    "read_int",
    "read_ordinal",
    "text_warnings",
]
