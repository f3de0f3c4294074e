"""Units and money after a number, and the words a slash after them means "per" (data only).

Read by :func:`tts.vi.numeric.units` and :func:`tts.vi.wording.slashes`.
"""

from __future__ import annotations

__all__ = ["COMPASS", "CURRENCY_PREFIX", "PER_AFTER", "PER_WORDS", "UNITS", "UNITS_ATTACHED"]

# Unit after a number → spoken words. Longest keys are tried first.
UNITS: dict[str, str] = {
    "km/h": "ki lô mét trên giờ",
    "km/giờ": "ki lô mét trên giờ",
    "m3/s": "mét khối trên giây",
    "m³/s": "mét khối trên giây",
    "m3/ngày": "mét khối một ngày",
    "m³/ngày": "mét khối một ngày",
    "m/s": "mét trên giây",
    "l/s": "lít trên giây",
    "mm/h": "mi li mét trên giờ",
    "mm/giờ": "mi li mét trên giờ",
    "đ/tháng": "đồng một tháng",
    "đ/năm": "đồng một năm",
    "đ/người": "đồng một người",
    "đ/hộ": "đồng một hộ",
    "đ": "đồng",
    "km²": "ki lô mét vuông",
    "km2": "ki lô mét vuông",
    "m²": "mét vuông",
    "m2": "mét vuông",
    "m³": "mét khối",
    "m3": "mét khối",
    "km": "ki lô mét",
    "Km": "ki lô mét",
    "cm": "xen ti mét",
    "mm": "mi li mét",
    "m": "mét",
    "ha": "héc ta",
    "kg": "ki lô gam",
    "mg": "mi li gam",
    "ml": "mi li lít",
    "°C": "độ xê",
    "ºC": "độ xê",
    "oC": "độ xê",
    "°F": "độ ép",
    "°": "độ",
    "%": "phần trăm",
    "‰": "phần nghìn",
    "kWh": "ki lô oát giờ",
    "kVA": "ki lô vôn ampe",
    "kW": "ki lô oát",
    "MW": "mê ga oát",
    "kV": "ki lô vôn",
    "GB": "gi ga bai",
    "MHz": "mê ga héc",
    "kHz": "ki lô héc",
    "GHz": "gi ga héc",
    "Hz": "héc",
    "MB": "mê ga bai",
    "VNĐ": "đồng",
    "VND": "đồng",
    "vnđ": "đồng",
    "vnd": "đồng",
    "USD": "đô la Mỹ",
    "$": "đô la",
    "€": "ơ rô",
    "EUR": "ơ rô",
}
# Units only recognised when written right after the digits (5l, 20g, 50.000đ, 50k).
UNITS_ATTACHED: dict[str, str] = {
    "đ": "đồng",
    "l": "lít",
    "L": "lít",
    "g": "gam",
    "k": "nghìn",
    "W": "oát",
    "V": "vôn",
    "tr": "triệu",
}
CURRENCY_PREFIX: dict[str, str] = {"$": "đô la", "€": "ơ rô"}

# "đồng/kg" → "đồng một ki lô gam": words that take "một" after a slash.
PER_WORDS: dict[str, str] = {
    **{w: w for w in ("năm", "tháng", "tuần", "ngày", "giờ", "phút", "người", "hộ", "lượt", "suất", "lần",
                      "ca", "buổi", "con", "cái", "chiếc", "tấn", "lít", "xe", "học sinh", "khẩu", "cây",
                      "tạ", "sào", "vé", "chuyến", "lớp", "bao", "thùng")},
    "kWh": "ki lô oát giờ",
    "kg": "ki lô gam", "km": "ki lô mét", "ha": "héc ta", "m2": "mét vuông", "m²": "mét vuông",
    "m3": "mét khối", "m³": "mét khối", "m": "mét", "h": "giờ",
}

# "2.000.000 đồng/tổ dân phố": after these words a slash means "per" whatever follows.
PER_AFTER = frozenset({"đồng", "la", "Mỹ", "trăm", "lít", "gam", "mét", "ta", "tấn", "nghìn", "ngàn", "triệu",
                       "tỷ", "khối", "vuông", "rô", "tạ", "yến"})

# A latitude or longitude written with a compass letter (20,5°N; 117,4°E; 22,2N-118,2E).
COMPASS: dict[str, str] = {"N": "độ vĩ bắc", "S": "độ vĩ nam", "E": "độ kinh đông", "W": "độ kinh tây"}
