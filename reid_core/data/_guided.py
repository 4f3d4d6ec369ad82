"""Named lists of guided validation ids (relabelled training ids, 0-based, sorted-pid order)."""

from __future__ import annotations

from reid_core.errors import ConfigError

#: The reference's fixed list of 32 hard MARS training ids ("inteliigi" sampling). Its code
#: meant to add random ids from a further pool up to 10% of the ids, but a list-append bug
#: adds none, so exactly these 32 are the validation ids of its guided searches.
PAPER_GUIDED_IDS: tuple[int, ...] = (
    41, 539, 600, 513, 287, 297, 304, 504, 90, 75, 45, 465, 408, 209, 552, 296,
    426, 31, 305, 149, 40, 129, 404, 613, 91, 393, 52, 283, 483, 371, 50, 353,
)  # fmt: skip

GUIDED_PRESETS: dict[str, tuple[int, ...]] = {"paper": PAPER_GUIDED_IDS}
"""Preset name -> validation ids (``ValidationConfig.preset``)."""


def guided_preset(name: str) -> tuple[int, ...]:
    """The ids of the guided preset ``name``.

    Raises:
        ConfigError: ``name`` is not a preset.

    Example:
        >>> len(guided_preset("paper"))
        32
    """
    try:
        return GUIDED_PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown guided preset {name!r}; available: {sorted(GUIDED_PRESETS)}"
        ) from None


__all__ = ["GUIDED_PRESETS", "PAPER_GUIDED_IDS", "guided_preset"]
