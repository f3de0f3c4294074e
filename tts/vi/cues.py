"""Context cues: the words around a number that decide how it is read (data only).

The rules in :mod:`tts.vi.dates` and :mod:`tts.vi.numeric` look left and right of each
number and consult these tables; to teach the normaliser a new count noun, holiday or
trigger word, add it here. Entries are lower case and matched as whole words.
"""

from __future__ import annotations

__all__ = [
    "ADDRESS_BEFORE",
    "COUNT_NOUNS",
    "DATE_AFTER",
    "DATE_BEFORE",
    "DATE_CONTEXT",
    "DAY_LEAD",
    "DOCUMENT_NAMES",
    "EMERGENCY",
    "EMERGENCY_BEFORE",
    "HALF_BEFORE",
    "HOLIDAYS",
    "NAME_BEFORE",
    "NOT_SERVICE_AFTER",
    "NOT_SERVICE_BEFORE",
    "PART_OF_WHOLE",
    "RANK_ORDINALS",
    "ROMAN_CONTEXT",
    "ROMAN_ORDINAL_CONTEXT",
    "SCORE_BEFORE",
    "SEQUENCE_YEAR_BEFORE",
    "SERVICE_BEFORE",
    "SYNTAX_BEFORE",
    "WEEKDAY_WORDS",
]

# A count noun right after a/b makes it "a trên b" (18/18 xã, 9/9 xã, phường), and outweighs a
# date word before it ("kết nối đến 9/9 xã"). Multi-word nouns are written with single spaces.
_COUNT_WORDS = """
xã phường thôn ấp bản buôn sóc làng xóm tổ khu khối cụm khóm hộ người em cháu trẻ cụ ca
điểm phiếu trường lớp huyện quận tỉnh tuyến trạm nhà căn phòng giường nhóm đội liều mũi mẫu lượt
buổi đợt cuộc vụ chiếc xe cái con cây ha km ban ngành giải
"""
COUNT_NOUNS = frozenset(_COUNT_WORDS.split()) | frozenset({
    "thị trấn", "khu phố", "tổ dân phố", "hộ dân", "hộ gia đình", "gia đình", "nhân khẩu", "công dân",
    "cử tri", "đảng viên", "đoàn viên", "hội viên", "thanh niên", "học sinh", "sinh viên", "bệnh nhân",
    "trường hợp", "lao động", "tiêu chí", "chỉ tiêu", "mục tiêu", "nhiệm vụ", "nội dung", "đại biểu",
    "điểm trường", "đơn vị", "cơ quan", "cơ sở", "chi bộ", "đảng bộ", "tổ chức", "doanh nghiệp",
    "hợp tác xã", "thành phố", "thị xã", "địa phương", "tuyến phố", "tuyến đường", "tuyến hẻm",
    "công trình", "dự án", "hạng mục", "hồ sơ", "thủ tục", "văn bản", "tờ trình", "báo cáo",
    "nghị quyết", "đề án", "chương trình", "kế hoạch", "mô hình", "sản phẩm", "điểm tiêm", "nhà văn hóa",
    "phòng học", "tiêu chuẩn", "thành phần", "câu lạc bộ", "ổ dịch", "ca bệnh", "vụ việc", "héc ta",
    "ki lô mét", "chi đoàn", "chi hội", "trạm y tế", "ban", "ngành", "đoàn thể", "giải pháp",
    "ý kiến", "lượt người", "thí sinh", "vận động viên", "lần", "tiếng", "tuần", "phút", "công ty",
    "cửa hàng", "suất", "suất quà", "phần quà", "bình", "thùng", "túi", "bộ", "tiết mục", "tàu", "thuyền",
    "tàu thuyền", "tàu cá", "phương tiện", "ngư dân", "thuyền viên",
})

# After a/b these make it a part of a whole: "1/2 số hộ" → một phần hai số hộ.
PART_OF_WHOLE = frozenset({
    "số", "diện tích", "dân số", "tổng", "tổng số", "lượng", "khối lượng", "quãng đường", "thời gian",
    "chiều dài", "giá trị", "kinh phí", "vốn", "sản lượng", "dung tích", "nhân lực", "lực lượng",
    "đất", "quỹ",
})

# "1/2" before these is a half: "1/2 ngày" → nửa ngày, "1/2 buổi sáng" → nửa buổi sáng.
HALF_BEFORE = frozenset({"ngày", "buổi", "giờ", "tiếng", "tháng", "năm", "tuần", "ca", "nhiệm kỳ", "thế kỷ",
                         "chặng", "hiệp", "đêm"})

# Holiday and commemoration names: a d/m after one is a date ("Quốc khánh 2/9").
HOLIDAYS = (
    "quốc khánh", "giải phóng miền nam", "thống nhất đất nước", "quốc tế lao động", "thương binh liệt sĩ",
    "thương binh liệt sỹ", "thương binh - liệt sĩ", "thương binh - liệt sỹ", "thương binh – liệt sĩ",
    "thương binh – liệt sỹ", "nhà giáo việt nam", "quốc tế phụ nữ", "phụ nữ việt nam", "quốc tế thiếu nhi",
    "thầy thuốc việt nam", "quân đội nhân dân việt nam", "toàn quốc kháng chiến", "chiến thắng",
    "thành lập đảng cộng sản việt nam", "thành lập đảng", "sinh nhật bác", "giỗ tổ hùng vương",
    "giỗ tổ", "tết thiếu nhi", "tết dương lịch", "đại đoàn kết toàn dân tộc", "biên phòng toàn dân",
    "quốc phòng toàn dân", "cách mạng tháng tám", "truyền thống", "kỷ niệm", "phòng cháy chữa cháy toàn dân",
    "pháp luật việt nam", "gia đình việt nam", "doanh nhân việt nam", "báo chí cách mạng việt nam",
    "lễ", "tết", "rằm", "valentine",
)

# Right before a d/m these make it a date (besides a weekday and the words in DATE_CONTEXT).
DATE_BEFORE = (
    "mai", "nay", "hôm nay", "hôm qua", "ngày mai", "sáng mai", "chiều mai", "tối mai", "sáng nay",
    "chiều nay", "tối nay", "trưa nay", "đêm nay", "chậm nhất", "muộn nhất", "trễ nhất", "kể từ",
    "bắt đầu từ", "hạn chót", "hạn cuối", "hết hạn", "thời hạn", "đến hết", "ngày đăng", "cập nhật",
    "sinh", "sinh ngày", "đợt", "dịp", "nhân dịp", "chiều tối", "sáng sớm", "rạng sáng", "khuya",
    "hồi", "cuối", "đầu", "giữa", "tuần", "hôm sau", "muộn", "khuya", "sớm", "hôm qua", "tính đến",
)
# After these a/b is an address number, never a date: "số 12/3 đường Lê Lợi" → mười hai trên ba.
ADDRESS_BEFORE = ("số", "số nhà", "nhà số", "hẻm", "kiệt", "ngõ", "ngách", "lô", "thửa", "căn hộ", "phòng",
                  "kios", "ki ốt", "tờ bản đồ", "thửa đất số", "lô đất")
# After these a d/m is the name of a street, a school, a bridge…: "đường 3/2" → đường ba tháng hai.
NAME_BEFORE = ("đường", "phố", "trường", "cầu", "chợ", "công viên", "quảng trường", "sân vận động", "bến",
               "ngã tư", "ngã ba", "nút giao", "khu tập thể", "trung học cơ sở", "trung học phổ thông",
               "tiểu học", "mầm non", "đại lộ")
# Right after a d/m these make it a date: "10/3 âm lịch".
DATE_AFTER = ("âm lịch", "dương lịch", "(al)", "al", "(âl)", "hằng năm", "hàng năm", "năm nay", "năm sau",
              "năm ngoái", "vừa qua", "tới", "sắp tới")

# A number with a leading zero after these is a name, read with its zero: "Đề án 06" → đề án không sáu.
DOCUMENT_NAMES = ("đề án", "nghị quyết", "chỉ thị", "kết luận", "quyết định", "kế hoạch", "chương trình",
                  "thông tư", "nghị định", "công văn", "thông báo", "hướng dẫn", "quy định", "công điện")

# A date after these needs no "ngày" added: "Ngày đăng 13/12/2021", "Ngày mai 7/2".
DAY_LEAD = ("ngày", "mùng", "mồng", "hôm", "các ngày", "hai ngày", "ngày đăng", "ngày ký", "ngày sinh",
            "ngày mai", "ngày hôm nay", "ngày hôm qua", "ngày cập nhật", "ngày ban hành", "ngày hiệu lực")

# Before a digit-dash-digit, these make it a score: "tỷ số 3-2" → ba hai.
SCORE_BEFORE = ("tỷ số", "tỉ số", "tỷ số chung cuộc", "tỉ số chung cuộc", "chung cuộc", "thắng", "thua",
                "hòa", "hoà", "cách biệt", "tỷ số là", "tỉ số là")

# Short and service numbers after these are read digit by digit (gọi 114, soạn tin UH gửi 1409).
SERVICE_BEFORE = (
    "gọi", "gọi số", "gọi ngay", "gọi ngay số", "gọi điện", "gọi điện đến", "gọi điện đến số", "gọi điện tới",
    "gọi điện tới số", "gọi tới", "gọi tới số", "gọi đến", "gọi đến số",
    "gọi vào số", "hãy gọi", "bấm", "bấm số", "quay số", "gửi", "gửi về", "gửi về số", "gửi đến",
    "gửi đến số", "gửi tới", "nhắn", "nhắn tin", "nhắn tin đến", "nhắn tin đến số", "nhắn đến", "soạn tin",
    "đầu số", "số máy", "tổng đài", "hệ thống tổng đài", "đường dây nóng", "đường dây khẩn cấp",
    "đường dây", "hotline", "cổng", "khẩn cấp", "văn phòng", "điện thoại", "số điện thoại", "liên hệ",
    "liên hệ số", "đt", "sđt", "nhân đạo quốc gia", "cổng thông tin nhân đạo quốc gia",
)
# A code in capitals after these is spelled even with vowels: "soạn tin UH gửi 1409" → u hát.
SYNTAX_BEFORE = ("soạn tin", "soạn tin nhắn", "soạn", "cú pháp", "nhắn tin", "nhắn", "theo cú pháp")
# ... unless a count noun, a unit or money follows ("gửi 500 hồ sơ").
NOT_SERVICE_AFTER = COUNT_NOUNS | frozenset({
    "đồng", "triệu", "tỷ", "tỉ", "nghìn", "ngàn", "trăm", "kg", "tấn", "suất", "phần", "bộ", "quyển", "cuốn",
    "thùng", "bao", "tin", "tin nhắn", "cuộc", "cuộc gọi", "lượt", "người", "năm", "tháng", "ngày", "giờ",
    "phút", "lần", "%",
})
# ... or a word before the trigger that changes its sense: "kêu gọi 215 tàu thuyền" is an appeal.
NOT_SERVICE_BEFORE = ("kêu", "lời kêu")

# Emergency numbers: always digit by digit after a trigger, even in a chain ("1022 và 115").
EMERGENCY = frozenset({"111", "112", "113", "114", "115", "1022"})
# ... also after these words: "cấp cứu 115", "gọi công an 113".
EMERGENCY_BEFORE = ("cấp cứu", "cứu thương", "cứu hỏa", "cứu hoả", "công an", "cảnh sát", "khẩn cấp",
                    "chữa cháy", "phòng cháy", "cứu nạn", "cứu hộ", "bảo vệ trẻ em")

# Roman numerals after these take the ordinal form (lần thứ I → lần thứ nhất).
ROMAN_ORDINAL_CONTEXT = ("thứ", "lần thứ", "phiên thứ", "kỳ thứ", "khóa thứ")
# "hạng I" → hạng nhất, "hạng II" → hạng nhì.
RANK_ORDINALS = {1: "nhất", 2: "nhì"}

# Weekday words (a dash between two of them is "đến").
WEEKDAY_WORDS = ("thứ hai", "thứ ba", "thứ tư", "thứ năm", "thứ sáu", "thứ bảy", "chủ nhật", "thứ 2", "thứ 3",
                 "thứ 4", "thứ 5", "thứ 6", "thứ 7")

# A d/m date needs one of these right before it (else 10/12 is "mười trên mười hai").
DATE_CONTEXT = (
    "ngày", "mùng", "mồng", "hôm", "sáng", "trưa", "chiều", "tối", "đêm", "rạng sáng", "từ", "đến", "tới",
    "trước", "sau", "hạn", "hết", "lúc", "vào", "chủ nhật", "thứ hai", "thứ ba", "thứ tư", "thứ năm",
    "thứ sáu", "thứ bảy", "thứ 2", "thứ 3", "thứ 4", "thứ 5", "thứ 6", "thứ 7",
)
# Roman numerals are read as numbers only after these words (khóa XV → khóa mười lăm).
ROMAN_CONTEXT = (
    "khóa", "khoá", "đại hội", "thế kỷ", "thế kỉ", "quý", "phần", "chương", "mục", "kỳ", "kì", "tập",
    "giai đoạn", "lần thứ", "hội nghị trung ương", "cấp", "vùng", "quân khu", "đợt", "thứ", "hạng", "mức độ",
    "mức", "loại", "nhóm", "bậc", "phiên thứ", "kỳ thứ", "khóa thứ", "cấp độ", "đại hội đảng bộ",
    "đại hội đại biểu", "khu vực", "học kỳ", "học kì", "vòng", "phụ lục", "tiểu khu", "phân khu",
)
# A number/year after these is a sequence and a year, never a month: "khóa 2/2026" → khóa hai năm…
SEQUENCE_YEAR_BEFORE = ("thứ", "khóa", "khoá", "lần", "phiên", "lớp", "tập")  # not "đợt 6/2026": June
