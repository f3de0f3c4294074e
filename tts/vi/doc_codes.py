"""Codes in document numbers (125/KH-UBND, 10-NQ/TU) and their senses in party documents (data only).

Read by :func:`tts.vi.identifiers.documents`; an abbreviation's own sense (:mod:`tts.vi.lexicon`) is a code's
sense too unless a code overrides it here.
"""

from __future__ import annotations

from tts.vi.lexicon import ABBREVIATIONS

__all__ = ["DOC_CODES", "DOC_CODES_PARTY", "DOC_KIND_NAMED"]

# Codes in document numbers such as 125/KH-UBND or 39/2020/TT-BTTTT.
DOC_CODES: dict[str, str] = {
    **{k: v for k, v in ABBREVIATIONS.items() if "." not in k and "/" not in k},  # a code's own sense wins
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
    "TTCP": "thanh tra chính phủ",
    "DP": "dự phòng",
    "KSBT": "kiểm soát bệnh tật",
    "PA": "phương án",
    "KL": "kết luận",
    "QC": "quy chế",
    "QyĐ": "quy định",
    "ĐA": "đề án",
    "CTr": "chương trình",
    "VBHN": "văn bản hợp nhất",
    "VPQH": "văn phòng quốc hội",
    "UBTVQH": "ủy ban thường vụ quốc hội",
    "YT": "y tế",
    "NVY": "nghiệp vụ y",
    "PYT": "phòng y tế",
    "BXD": "bộ xây dựng",
    "BCT": "bộ công thương",
    "BQP": "bộ quốc phòng",
    "BTP": "bộ tư pháp",
    "BNV": "bộ nội vụ",
    "BTC": "bộ tài chính",
    "BTNMT": "bộ tài nguyên và môi trường",
    "BNNPTNT": "bộ nông nghiệp và phát triển nông thôn",
    "BLĐTBXH": "bộ lao động thương binh và xã hội",
    "BVHTTDL": "bộ văn hóa, thể thao và du lịch",
    "BGTVT": "bộ giao thông vận tải",
    "SNV": "sở nội vụ",
    "STP": "sở tư pháp",
    "STC": "sở tài chính",
    "SXD": "sở xây dựng",
    "SGDĐT": "sở giáo dục và đào tạo",
    "BCTĐ": "báo cáo thẩm định",
    "HC": "hành chính",
    "PC": "pháp chế",
    "VX": "văn xã",
    "KT": "kinh tế",
    "NC": "nội chính",
    "TCKH": "tài chính kế hoạch",
    "QLĐT": "quản lý đô thị",
    "ĐTN": "đoàn thanh niên",
    "LĐLĐ": "liên đoàn lao động",
    "CAP": "công an phường",
    "CAX": "công an xã",
    "KHLT": "kế hoạch liên tịch",
    "NQLT": "nghị quyết liên tịch",
    "TTLT": "thông tư liên tịch",
    "CTrLT": "chương trình liên tịch",
}

# Codes with another sense in party documents (a number with TW, TU, HU, ĐU...): 12-QĐ/BTC.
DOC_CODES_PARTY: dict[str, str] = {
    "BTC": "ban tổ chức",
    "BTG": "ban tuyên giáo",
    "BDV": "ban dân vận",
    "UBKT": "ủy ban kiểm tra",
    "VPTU": "văn phòng tỉnh ủy",
    "BTV": "ban thường vụ",
    "BCĐ": "ban chỉ đạo",
    "QU": "quận ủy",
    "TVTU": "thường vụ tỉnh ủy",
    "BCS": "ban cán sự",
    "ĐUK": "đảng ủy khối",
    "TUQ": "thay mặt ủy quyền",
}

# A kind code whose sense is the document's own name written before its number: "Quy định số 144-QĐ/TW"
# (a regulation; the same code is a decision in "Quyết định số 99-QĐ/TW").
DOC_KIND_NAMED: dict[str, tuple[str, ...]] = {"QĐ": ("quy định", "quyết định")}
