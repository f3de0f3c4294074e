"""The spoken form of phrases from Vietnamese public notices: exact expected output.

Each case is (written, spoken) for the northern voice; a second table covers the
central/southern reading (lẻ, ngàn). The rules are documented in docs/speech.md.
"""

from __future__ import annotations

import pytest

from tts.vi import normalize

NORTH: list[tuple[str, str]] = [
    # integers, "." thousands
    ("Phường có 6.665 người.", "Phường có sáu nghìn sáu trăm sáu mươi lăm người."),
    ("Có 21 hộ", "Có hai mươi mốt hộ"),
    ("15 tổ dân phố", "mười lăm tổ dân phố"),
    ("25 người", "hai mươi lăm người"),
    ("trực 24 giờ", "trực hai mươi tư giờ"),
    ("105 hộ", "một trăm linh năm hộ"),
    ("1.000.000 đồng", "một triệu đồng"),
    ("2.500.000.000 đồng", "hai tỷ năm trăm triệu đồng"),
    ("10 xã", "mười xã"),
    ("11 thôn", "mười một thôn"),
    ("14 hộ", "mười bốn hộ"),
    ("20 người", "hai mươi người"),
    ("31 em", "ba mươi mốt em"),
    ("44 hộ", "bốn mươi tư hộ"),
    ("55 tuổi", "năm mươi lăm tuổi"),
    ("100 người", "một trăm người"),
    ("110 hộ", "một trăm mười hộ"),
    ("115 hộ", "một trăm mười lăm hộ"),
    ("201 phòng", "hai trăm linh một phòng"),
    ("1.005 người", "một nghìn không trăm linh năm người"),
    ("1.050 người", "một nghìn không trăm năm mươi người"),
    ("12.345 người", "mười hai nghìn ba trăm bốn mươi lăm người"),
    ("1.000.005 đồng", "một triệu không trăm linh năm đồng"),
    ("1.005.000 đồng", "một triệu không trăm linh năm nghìn đồng"),
    ("3.000.000.000.000 đồng", "ba nghìn tỷ đồng"),
    ("0 ca mắc mới", "không ca mắc mới"),
    ("Có 1,000,000 người", "Có một triệu người"),
    ("5000000 đồng", "năm triệu đồng"),
    ("mã hồ sơ 1234567890", "mã hồ sơ một hai ba bốn năm sáu bảy tám chín không"),
    ("số CCCD 001234567890", "số căn cước công dân không không một hai ba bốn năm sáu bảy tám chín không"),
    # decimals with ","
    ("99,3", "chín mươi chín phẩy ba"),
    ("0,5 độ", "không phẩy năm độ"),
    ("3,14", "ba phẩy mười bốn"),
    ("2,05 tỷ", "hai phẩy không năm tỷ"),
    ("1.234,5 tấn", "một nghìn hai trăm ba mươi tư phẩy năm tấn"),
    ("6,125 triệu", "sáu phẩy một trăm hai mươi lăm triệu"),
    ("3,14159", "ba phẩy một bốn một năm chín"),
    ("công nghiệp 4.0", "công nghiệp bốn chấm không"),
    ("phiên bản 2.1", "phiên bản hai chấm một"),
    # percentages and per-mille
    ("đạt 99,3%", "đạt chín mươi chín phẩy ba phần trăm"),
    ("tăng 12%", "tăng mười hai phần trăm"),
    ("từ 50-60%", "từ năm mươi đến sáu mươi phần trăm"),
    ("100% hộ dân", "một trăm phần trăm hộ dân"),
    ("giảm 0,8% so với cùng kỳ", "giảm không phẩy tám phần trăm so với cùng kỳ"),
    ("tăng 5,2%/năm", "tăng năm phẩy hai phần trăm một năm"),
    ("tỷ lệ sinh 15‰", "tỷ lệ sinh mười lăm phần nghìn"),
    # ratios and fractions
    ("18/18 xã", "mười tám trên mười tám xã"),
    ("hoàn thành 10/12 mục tiêu", "hoàn thành mười trên mười hai mục tiêu"),
    ("1/2 số hộ", "một phần hai số hộ"),
    ("3/4 diện tích", "ba phần tư diện tích"),
    ("2/3 số phiếu", "hai phần ba số phiếu"),
    ("phục vụ 24/7", "phục vụ hai mươi tư trên bảy"),
    ("đạt 19/19 tiêu chí", "đạt mười chín trên mười chín tiêu chí"),
    ("xếp thứ 12/63", "xếp thứ mười hai trên sáu mươi ba"),
    ("bản đồ tỷ lệ 1:500", "bản đồ tỷ lệ một trên năm trăm"),
    # ranges
    (
        "giai đoạn 2021-2025",
        "giai đoạn hai nghìn không trăm hai mươi mốt đến hai nghìn không trăm hai mươi lăm",
    ),
    (
        "giai đoạn 2021 - 2025",
        "giai đoạn hai nghìn không trăm hai mươi mốt đến hai nghìn không trăm hai mươi lăm",
    ),
    ("nhiệm kỳ 2026–2031", "nhiệm kỳ hai nghìn không trăm hai mươi sáu đến hai nghìn không trăm ba mươi mốt"),
    ("từ 5-7 ngày", "từ năm đến bảy ngày"),
    ("nhiệt độ 25-30°C", "nhiệt độ hai mươi lăm đến ba mươi độ xê"),
    ("cao 1,5-2 m", "cao một phẩy năm đến hai mét"),
    # ordinals and Roman numerals
    ("lần thứ 1", "lần thứ nhất"),
    ("lần thứ 4", "lần thứ tư"),
    ("kỳ họp thứ 10", "kỳ họp thứ mười"),
    ("Thứ 2 tuần sau", "Thứ hai tuần sau"),
    ("Thứ 7, Chủ nhật", "Thứ bảy, Chủ nhật"),
    ("đứng thứ 14", "đứng thứ mười bốn"),
    ("Đại hội lần thứ XIII", "Đại hội lần thứ mười ba"),
    ("Quốc hội khóa XV", "Quốc hội khóa mười lăm"),
    ("thế kỷ XXI", "thế kỷ hai mươi mốt"),
    ("quý IV", "quý bốn"),
    ("quý I/2026", "quý một năm hai nghìn không trăm hai mươi sáu"),
    # dates
    ("ngày 22/11/2026", "ngày hai mươi hai tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    (
        "Vĩnh Yên, 22/11/2026",
        "Vĩnh Yên, ngày hai mươi hai tháng mười một năm hai nghìn không trăm hai mươi sáu",
    ),
    ("ngày 31/12", "ngày ba mươi mốt tháng mười hai"),
    ("từ tháng 6/2019", "từ tháng sáu năm hai nghìn không trăm mười chín"),
    ("ngày 01/04/2026", "ngày một tháng tư năm hai nghìn không trăm hai mươi sáu"),
    ("ngày 4/5", "ngày bốn tháng năm"),
    ("từ 10/12 đến 15/12", "từ ngày mười tháng mười hai đến ngày mười lăm tháng mười hai"),
    ("sáng 22/11", "sáng ngày hai mươi hai tháng mười một"),
    ("Chủ nhật (23/11)", "Chủ nhật, ngày hai mươi ba tháng mười một"),
    ("ngày 22-11-2026", "ngày hai mươi hai tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("ngày 22.11.2026", "ngày hai mươi hai tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("tháng 12/2025", "tháng mười hai năm hai nghìn không trăm hai mươi lăm"),
    ("ngày 22 tháng 11 năm 2026", "ngày hai mươi hai tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("tháng 4 năm 2026", "tháng tư năm hai nghìn không trăm hai mươi sáu"),
    ("tháng 01", "tháng một"),
    ("ngày 05", "ngày năm"),
    ("ngày 2/9", "ngày hai tháng chín"),
    ("ngày 10/12 và 15/12", "ngày mười tháng mười hai và ngày mười lăm tháng mười hai"),
    ("22/11-25/11", "ngày hai mươi hai tháng mười một đến ngày hai mươi lăm tháng mười một"),
    ("năm 2025", "năm hai nghìn không trăm hai mươi lăm"),
    ("Ngày 22/11 phường tổng vệ sinh.", "Ngày hai mươi hai tháng mười một phường tổng vệ sinh."),
    ("đợt 6/2026", "đợt tháng sáu năm hai nghìn không trăm hai mươi sáu"),
    # times
    ("lúc 7h30", "lúc bảy giờ ba mươi phút"),
    ("lúc 7h", "lúc bảy giờ"),
    ("lúc 7h00", "lúc bảy giờ"),
    ("lúc 7h05", "lúc bảy giờ năm phút"),
    ("17:00", "mười bảy giờ"),
    ("lúc 17:30", "lúc mười bảy giờ ba mươi phút"),
    ("5 giờ 30", "năm giờ ba mươi"),
    ("từ 7h30-11h30", "từ bảy giờ ba mươi phút đến mười một giờ ba mươi phút"),
    ("17g30", "mười bảy giờ ba mươi phút"),
    ("7h30'", "bảy giờ ba mươi phút"),
    ("7:05:30", "bảy giờ năm phút ba mươi giây"),
    ("8h sáng", "tám giờ sáng"),
    ("Mất điện từ 7h đến 9h sáng mai.", "Mất điện từ bảy giờ đến chín giờ sáng mai."),
    ("Họp tổ dân phố lúc 19h.", "Họp tổ dân phố lúc mười chín giờ."),
    # weekdays
    ("làm việc T2-T6", "làm việc thứ hai đến thứ sáu"),
    ("CN 23/11", "chủ nhật ngày hai mươi ba tháng mười một"),
    ("T2 (22/11)", "thứ hai, ngày hai mươi hai tháng mười một"),
    ("Thứ Hai, 22/11", "Thứ Hai, ngày hai mươi hai tháng mười một"),
    # currency
    ("50.000 đồng", "năm mươi nghìn đồng"),
    ("50.000đ", "năm mươi nghìn đồng"),
    ("50.000 VNĐ", "năm mươi nghìn đồng"),
    ("200.000 VND", "hai trăm nghìn đồng"),
    ("1,5 tỷ đồng", "một phẩy năm tỷ đồng"),
    ("100 USD", "một trăm đô la Mỹ"),
    ("$100", "một trăm đô la"),
    ("95.000đ/kg", "chín mươi lăm nghìn đồng một ki lô gam"),
    ("vé 50k", "vé năm mươi nghìn"),
    ("hỗ trợ 2tr", "hỗ trợ hai triệu"),
    ("350.000 đồng/người/tháng", "ba trăm năm mươi nghìn đồng một người một tháng"),
    # units
    ("15 km", "mười lăm ki lô mét"),
    ("500 m2", "năm trăm mét vuông"),
    ("120m²", "một trăm hai mươi mét vuông"),
    ("2,5 ha", "hai phẩy năm héc ta"),
    ("30 kg", "ba mươi ki lô gam"),
    ("32°C", "ba mươi hai độ xê"),
    ("lượng mưa 150mm", "lượng mưa một trăm năm mươi mi li mét"),
    ("nhiệt độ -5°C", "nhiệt độ âm năm độ xê"),
    ("60 km/h", "sáu mươi ki lô mét trên giờ"),
    ("10 m3 nước", "mười mét khối nước"),
    ("5 lít", "năm lít"),
    ("2l dầu", "hai lít dầu"),
    ("500g", "năm trăm gam"),
    ("20 tấn", "hai mươi tấn"),
    ("1.000 kWh", "một nghìn ki lô oát giờ"),
    ("30oC", "ba mươi độ xê"),
    ("cao 1,7m", "cao một phẩy bảy mét"),
    ("dài 3 cm", "dài ba xen ti mét"),
    # phone numbers, hotlines, emergency numbers
    ("0912.345.678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("0912 345 678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("0912345678", "không chín một hai, ba bốn năm, sáu bảy tám"),
    ("gọi 114", "gọi một một bốn"),
    ("gọi 113 hoặc 115", "gọi một một ba hoặc một một năm"),
    ("đường dây nóng 1022", "đường dây nóng một không hai hai"),
    ("+84 912 345 678", "cộng tám bốn, chín một hai, ba bốn năm, sáu bảy tám"),
    ("(0211) 3862 123", "không hai một một, ba tám sáu hai, một hai ba"),
    ("hotline 1900 1234", "hotline một chín không không, một hai ba bốn"),
    ("SĐT: 0987654321", "số điện thoại: không chín tám bảy, sáu năm bốn, ba hai một"),
    # vehicle plates
    ("xe 30A-123.45", "xe ba mươi a, một hai ba bốn năm"),
    ("xe máy 29B1-234.56", "xe máy hai mươi chín bê một, hai ba bốn năm sáu"),
    ("biển số 51F-12345", "biển số năm mươi mốt ép, một hai ba bốn năm"),
    # document numbers
    (
        "Quyết định số 1234/QĐ-UBND",
        "Quyết định số một nghìn hai trăm ba mươi tư trên quyết định ủy ban nhân dân",
    ),
    ("Kế hoạch 125/KH-UBND", "Kế hoạch một trăm hai mươi lăm trên kế hoạch ủy ban nhân dân"),
    (
        "Thông tư 39/2020/TT-BTTTT",
        "Thông tư ba mươi chín trên hai nghìn không trăm hai mươi trên thông tư bộ thông tin và truyền thông",
    ),
    ("Nghị quyết số 15/NQ-CP", "Nghị quyết số mười lăm trên nghị quyết chính phủ"),
    ("Công văn 05/CV-UBND", "Công văn không năm trên công văn ủy ban nhân dân"),
    # abbreviations
    ("UBND phường", "ủy ban nhân dân phường"),
    ("kỳ họp HĐND", "kỳ họp hội đồng nhân dân"),
    ("Ban Thường trực MTTQ", "Ban Thường trực mặt trận tổ quốc"),
    ("TP. Vĩnh Yên", "thành phố Vĩnh Yên"),
    ("tại TP.HCM", "tại thành phố Hồ Chí Minh"),
    ("TX. Phúc Yên", "thị xã Phúc Yên"),
    ("ứng dụng CNTT", "ứng dụng công nghệ thông tin"),
    ("đẩy mạnh CĐS", "đẩy mạnh chuyển đổi số"),
    ("thẻ BHYT", "thẻ bảo hiểm y tế"),
    ("trường THPT", "trường trung học phổ thông"),
    ("dịch COVID-19", "dịch cô vít mười chín"),
    ("Đ/c Nguyễn Văn An", "đồng chí Nguyễn Văn An"),
    ("P. Ngô Quyền", "phường Ngô Quyền"),
    ("Q. 1", "quận một"),
    ("công tác PCCC", "công tác phòng cháy chữa cháy"),
    ("ca F0", "ca ép không"),
    ("QL1A", "quốc lộ một a"),
    ("mạng 4G", "mạng bốn giê"),
    ("cúm H5N1", "cúm hát năm en một"),
    ("VNPT", "vê en pê tê"),
    ("phát triển KT-XH", "phát triển kinh tế xã hội"),
    ("các loại giấy tờ v.v.", "các loại giấy tờ vân vân."),
    ("ThS. Lê Minh", "thạc sĩ Lê Minh"),
    ("ngành GD&ĐT", "ngành giáo dục và đào tạo"),
    ("cài VNeID", "cài vê en ê ai đi"),
    # web and e-mail addresses
    ("https://dichvucong.gov.vn", "dichvucong chấm gốp chấm vê en"),
    ("www.vinhphuc.gov.vn", "vê kép vê kép vê kép chấm vinhphuc chấm gốp chấm vê en"),
    ("phuong.ngoquyen@vinhphuc.gov.vn", "phuong chấm ngoquyen a còng vinhphuc chấm gốp chấm vê en"),
    # symbols
    ("≥ 18 tuổi", "lớn hơn hoặc bằng mười tám tuổi"),
    ("~50 hộ", "khoảng năm mươi hộ"),
    ("phòng 3x4m", "phòng ba nhân bốn mét"),
    ("5 + 3 = 8", "năm cộng ba bằng tám"),
    ("giải #1", "giải số một"),
    ("Tổ 1 & 2", "Tổ một và hai"),
    # punctuation into pauses, line structure
    (
        "Thông báo:\n- Thời gian: 7h30\n- Địa điểm: nhà văn hóa",
        "Thông báo: Thời gian: bảy giờ ba mươi phút. Địa điểm: nhà văn hóa",
    ),
    ("THÔNG BÁO\nVề việc tiêm phòng", "THÔNG BÁO. Về việc tiêm phòng"),
    ("nhà văn hóa\ntổ 5", "nhà văn hóa tổ năm"),
    ("Nhà văn hóa (tổ 5)", "Nhà văn hóa, tổ năm"),
    ("“Ngày hội Đại đoàn kết”", "Ngày hội Đại đoàn kết"),
    ("tuyến Hà Nội - Hải Phòng", "tuyến Hà Nội, Hải Phòng"),
    ("Xin cảm ơn!!!", "Xin cảm ơn!"),
    ("Chú ý... chú ý", "Chú ý. chú ý"),
    ("mời anh/chị", "mời anh chị"),
    ("tỉnh Bà Rịa-Vũng Tàu", "tỉnh Bà Rịa Vũng Tàu"),
    ("📢 Thông báo 🔥", "Thông báo"),
    ("mời bà con; đề nghị", "mời bà con; đề nghị"),
    ("• Thời gian\n• Địa điểm", "Thời gian. Địa điểm"),
    ("1. Thời gian: 7h\n2. Địa điểm: nhà văn hóa", "một, Thời gian: bảy giờ. hai, Địa điểm: nhà văn hóa"),
    ("V/v tổ chức Ngày hội", "về việc tổ chức Ngày hội"),
    ("kinh phí 2.000.000đ/TDP", "kinh phí hai triệu đồng một tổ dân phố"),
    ("Kế hoạch 12/KH-BTT", "Kế hoạch mười hai trên kế hoạch ban thường trực"),
    # unknown things stay readable
    (
        "Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa",
        "Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa",
    ),
    ("người H'Mông", "người H'Mông"),
    ("Zalo OA của phường", "Zalo OA của phường"),
    ("Hội nghị 中文", "Hội nghị 中文"),
]

SOUTH: list[tuple[str, str]] = [
    ("105 hộ", "một trăm lẻ năm hộ"),
    ("304 hộ", "ba trăm lẻ bốn hộ"),
    ("1.000 người", "một ngàn người"),
    ("1.005 người", "một ngàn không trăm lẻ năm người"),
    ("2.500.000 đồng", "hai triệu năm trăm ngàn đồng"),
    ("ngày 22/11/2026", "ngày hai mươi hai tháng mười một năm hai ngàn không trăm hai mươi sáu"),
    ("25 người", "hai mươi lăm người"),
    ("24 giờ", "hai mươi tư giờ"),
]


def test_table_is_large_enough() -> None:
    assert len(NORTH) + len(SOUTH) >= 150
    assert len({w for w, _ in NORTH}) == len(NORTH)  # no duplicated case


@pytest.mark.parametrize(("written", "spoken"), NORTH, ids=[w[:40] for w, _ in NORTH])
def test_north(written: str, spoken: str) -> None:
    assert normalize(written, dialect="north").text == spoken


@pytest.mark.parametrize(("written", "spoken"), SOUTH, ids=[w[:40] for w, _ in SOUTH])
@pytest.mark.parametrize("dialect", ["south", "central"])
def test_south_and_central(written: str, spoken: str, dialect: str) -> None:
    assert normalize(written, dialect=dialect).text == spoken  # type: ignore[arg-type]
