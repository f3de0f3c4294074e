"""Word lists for Vietnamese normalisation: abbreviations, units, letter names, codes.

Everything here is data; the rules that use it live in :mod:`tts.vi.rules`.
"""

from __future__ import annotations

__all__ = [
    "ABBREVIATIONS",
    "CURRENCY_PREFIX",
    "DATE_CONTEXT",
    "DOC_CODES",
    "LETTERS",
    "PER_AFTER",
    "PER_WORDS",
    "PHONE_CONTEXT",
    "ROMAN_CONTEXT",
    "UNITS",
    "UNITS_ATTACHED",
    "VOWELS",
    "WEB_WORDS",
]

# Abbreviations common in public announcements, matched case-sensitively as whole tokens.
ABBREVIATIONS: dict[str, str] = {
    # administration
    "UBND": "ủy ban nhân dân",
    "HĐND": "hội đồng nhân dân",
    "MTTQ": "mặt trận tổ quốc",
    "MTTQVN": "mặt trận tổ quốc Việt Nam",
    "UBMTTQ": "ủy ban mặt trận tổ quốc",
    "UBMTTQVN": "ủy ban mặt trận tổ quốc Việt Nam",
    "ĐBQH": "đại biểu quốc hội",
    "BCH": "ban chấp hành",
    "BCĐ": "ban chỉ đạo",
    "BTV": "ban thường vụ",
    "BQL": "ban quản lý",
    "TW": "trung ương",
    "TƯ": "trung ương",
    "CHXHCN": "cộng hòa xã hội chủ nghĩa",
    "XHCN": "xã hội chủ nghĩa",
    "ĐCSVN": "đảng cộng sản Việt Nam",
    "TDP": "tổ dân phố",
    "KDC": "khu dân cư",
    "KP": "khu phố",
    "HTX": "hợp tác xã",
    "KCN": "khu công nghiệp",
    "NTM": "nông thôn mới",
    "KT-XH": "kinh tế xã hội",
    "VH-XH": "văn hóa xã hội",
    "VH-TT": "văn hóa thông tin",
    "VHTT": "văn hóa thông tin",
    "VH,TT&DL": "văn hóa, thể thao và du lịch",
    "VHTTDL": "văn hóa, thể thao và du lịch",
    "LĐTBXH": "lao động thương binh và xã hội",
    "LĐ-TB&XH": "lao động thương binh và xã hội",
    "GD&ĐT": "giáo dục và đào tạo",
    "GDĐT": "giáo dục và đào tạo",
    "TN&MT": "tài nguyên và môi trường",
    "TNMT": "tài nguyên và môi trường",
    "NN&PTNT": "nông nghiệp và phát triển nông thôn",
    "TT&TT": "thông tin và truyền thông",
    "TTTT": "thông tin và truyền thông",
    "HLHPN": "hội liên hiệp phụ nữ",
    "CCB": "cựu chiến binh",
    "ĐTN": "đoàn thanh niên",
    "TNCS": "thanh niên cộng sản",
    "UBKT": "ủy ban kiểm tra",
    "VKSND": "viện kiểm sát nhân dân",
    "TAND": "tòa án nhân dân",
    "CAND": "công an nhân dân",
    "QĐND": "quân đội nhân dân",
    "CSGT": "cảnh sát giao thông",
    "CSKV": "cảnh sát khu vực",
    "CHQS": "chỉ huy quân sự",
    "NVQS": "nghĩa vụ quân sự",
    # public services
    "CNTT": "công nghệ thông tin",
    "CĐS": "chuyển đổi số",
    "BHYT": "bảo hiểm y tế",
    "BHXH": "bảo hiểm xã hội",
    "BHTN": "bảo hiểm thất nghiệp",
    "THPT": "trung học phổ thông",
    "THCS": "trung học cơ sở",
    "TH": "tiểu học",
    "ĐH": "đại học",
    "CCCD": "căn cước công dân",
    "CMND": "chứng minh nhân dân",
    "GPLX": "giấy phép lái xe",
    "SĐT": "số điện thoại",
    "ĐT": "điện thoại",
    "PCCC": "phòng cháy chữa cháy",
    "PCCC&CNCH": "phòng cháy chữa cháy và cứu nạn cứu hộ",
    "CNCH": "cứu nạn cứu hộ",
    "PCTT": "phòng chống thiên tai",
    "TKCN": "tìm kiếm cứu nạn",
    "PCTT&TKCN": "phòng chống thiên tai và tìm kiếm cứu nạn",
    "ATGT": "an toàn giao thông",
    "ATTP": "an toàn thực phẩm",
    "VSATTP": "vệ sinh an toàn thực phẩm",
    "ANTT": "an ninh trật tự",
    "GPMB": "giải phóng mặt bằng",
    "HS": "học sinh",
    "GV": "giáo viên",
    "STT": "số thứ tự",
    "COVID-19": "cô vít mười chín",
    "Covid-19": "cô vít mười chín",
    "covid-19": "cô vít mười chín",
    "COVID": "cô vít",
    "Covid": "cô vít",
    "SARS-CoV-2": "sát cô vi hai",
    "QL": "quốc lộ",
    "TL": "tỉnh lộ",
    "F0": "ép không",
    "F1": "ép một",
    "F2": "ép hai",
    "WHO": "tổ chức y tế thế giới",
    "VN": "Việt Nam",
    "HCM": "Hồ Chí Minh",
    "TP.HCM": "thành phố Hồ Chí Minh",
    "TPHCM": "thành phố Hồ Chí Minh",
    "TP. HCM": "thành phố Hồ Chí Minh",
    "VNeID": "vê en ê ai đi",
    # with a dot
    "TP.": "thành phố",
    "Tp.": "thành phố",
    "TX.": "thị xã",
    "Tx.": "thị xã",
    "TT.": "thị trấn",
    "ThS.": "thạc sĩ",
    "TS.": "tiến sĩ",
    "PGS.": "phó giáo sư",
    "GS.": "giáo sư",
    "BS.": "bác sĩ",
    "KS.": "kỹ sư",
    "v.v.": "vân vân",
    "v.v": "vân vân",
    "V/v": "về việc",
    "v/v": "về việc",
    "Đ/c": "đồng chí",
    "đ/c": "đồng chí",
    "Đ/C": "đồng chí",
}

# Codes in document numbers such as 125/KH-UBND or 39/2020/TT-BTTTT.
DOC_CODES: dict[str, str] = {
    "QĐ": "quyết định",
    "KH": "kế hoạch",
    "TB": "thông báo",
    "CV": "công văn",
    "CT": "chỉ thị",
    "NQ": "nghị quyết",
    "NĐ": "nghị định",
    "TT": "thông tư",
    "HD": "hướng dẫn",
    "BC": "báo cáo",
    "TTr": "tờ trình",
    "BTT": "ban thường trực",
    "CĐ": "công điện",
    "CP": "chính phủ",
    "TTg": "thủ tướng",
    "BTTTT": "bộ thông tin và truyền thông",
    "BYT": "bộ y tế",
    "BCA": "bộ công an",
    "BGDĐT": "bộ giáo dục và đào tạo",
    "TU": "tỉnh ủy",
    "HU": "huyện ủy",
    "ĐU": "đảng ủy",
    "VP": "văn phòng",
    "SYT": "sở y tế",
    "QH": "quốc hội",
    **{k: v for k, v in ABBREVIATIONS.items() if "." not in k and "/" not in k},
}

# Unit after a number → spoken words. Longest keys are tried first.
UNITS: dict[str, str] = {
    "km/h": "ki lô mét trên giờ",
    "km²": "ki lô mét vuông",
    "km2": "ki lô mét vuông",
    "m²": "mét vuông",
    "m2": "mét vuông",
    "m³": "mét khối",
    "m3": "mét khối",
    "km": "ki lô mét",
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
    "kW": "ki lô oát",
    "MW": "mê ga oát",
    "kV": "ki lô vôn",
    "GB": "gi ga bai",
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
                      "ca", "buổi", "con", "cái", "chiếc", "tấn", "lít", "xe", "học sinh", "khẩu", "cây")},
    "kg": "ki lô gam", "km": "ki lô mét", "ha": "héc ta", "m2": "mét vuông", "m²": "mét vuông",
    "m3": "mét khối", "m³": "mét khối", "m": "mét", "h": "giờ",
}

# "2.000.000 đồng/tổ dân phố": after these words a slash means "per" whatever follows.
PER_AFTER = frozenset({"đồng", "la", "Mỹ", "trăm", "lít", "gam", "mét", "ta", "tấn", "nghìn", "ngàn", "triệu",
                       "tỷ", "khối", "vuông", "rô"})

# Vietnamese names of Latin letters, for spelling acronyms (VNPT → vê en pê tê).
LETTERS: dict[str, str] = {
    "A": "a", "Ă": "á", "Â": "ớ", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e", "Ê": "ê",
    "F": "ép", "G": "giê", "H": "hát", "I": "i", "J": "gi", "K": "ca", "L": "e lờ", "M": "em",
    "N": "en", "O": "o", "Ô": "ô", "Ơ": "ơ", "P": "pê", "Q": "qui", "R": "e rờ", "S": "ét", "T": "tê",
    "U": "u", "Ư": "ư", "V": "vê", "W": "vê kép", "X": "ích", "Y": "i", "Z": "dét",
}
VOWELS = frozenset("AĂÂEÊIOÔƠUƯYÁÀẢÃẠẮẰẲẴẶẤẦẨẪẬÉÈẺẼẸẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌỐỒỔỖỘỚỜỞỠỢÚÙỦŨỤỨỪỬỮỰÝỲỶỸỴ")

# Words read as themselves (web addresses); others are spelled or left as written.
WEB_WORDS: dict[str, str] = {
    "www": "vê kép vê kép vê kép", "vn": "vê en", "com": "com", "gov": "gốp", "edu": "e đu",
    "org": "o rờ gờ", "net": "nét", "http": "", "https": "", "zalo": "da lô", "facebook": "phây búc",
    "gmail": "gờ meo", "youtube": "du túp",
}

# A d/m date needs one of these right before it (else 10/12 is "mười trên mười hai").
DATE_CONTEXT = (
    "ngày", "mùng", "mồng", "hôm", "sáng", "trưa", "chiều", "tối", "đêm", "rạng sáng", "từ", "đến", "tới",
    "trước", "sau", "hạn", "hết", "lúc", "vào", "chủ nhật", "thứ hai", "thứ ba", "thứ tư", "thứ năm",
    "thứ sáu", "thứ bảy", "thứ 2", "thứ 3", "thứ 4", "thứ 5", "thứ 6", "thứ 7",
)
# Short numbers after these are read digit by digit (gọi 114 → gọi một một bốn).
PHONE_CONTEXT = (
    "gọi", "gọi số", "gọi ngay", "đường dây nóng", "hotline", "tổng đài", "điện thoại", "ĐT", "SĐT",
    "số điện thoại", "liên hệ", "liên hệ số",
)
# Roman numerals are read as numbers only after these words (khóa XV → khóa mười lăm).
ROMAN_CONTEXT = (
    "khóa", "khoá", "đại hội", "thế kỷ", "thế kỉ", "quý", "phần", "chương", "mục", "kỳ", "kì", "tập",
    "giai đoạn", "lần thứ", "hội nghị trung ương", "cấp", "vùng", "quân khu", "đợt",
)
