"""Known coordinates (WGS-84) with the expected answer at each level.

Columns: label, latitude, longitude, country code, province, city, district.
``None`` at a level means "not checked" (the expected name is uncertain or absent).
Abroad the province level is never checked; city names are the usual mainland forms.
"""

from __future__ import annotations

from typing import NamedTuple


class Known(NamedTuple):
    label: str
    latitude: float
    longitude: float
    country_code: str
    province: str | None
    city: str | None
    district: str | None
    kind: str = "landmark"


BJ, SH, TJ, CQ = "北京市", "上海市", "天津市", "重庆市"
HK, MO, TW = "香港特别行政区", "澳门特别行政区", "台湾省"

KNOWN_PLACES: list[Known] = [
    # Landmarks across the provinces
    Known("天安门", 39.9087, 116.3975, "CN", BJ, BJ, "东城区"),
    Known("颐和园", 39.9999, 116.2755, "CN", BJ, BJ, "海淀区"),
    Known("八达岭长城", 40.3597, 116.0200, "CN", BJ, BJ, "延庆区"),
    Known("外滩", 31.2403, 121.4850, "CN", SH, SH, "黄浦区"),
    Known("东方明珠", 31.2397, 121.4998, "CN", SH, SH, "浦东新区"),
    Known("天津大学", 39.1070, 117.1700, "CN", TJ, TJ, "南开区"),
    Known("解放碑", 29.5576, 106.5775, "CN", CQ, CQ, "渝中区"),
    Known("西湖断桥", 30.2596, 120.1500, "CN", "浙江省", "杭州市", "西湖区"),
    Known("灵隐寺", 30.2408, 120.1010, "CN", "浙江省", "杭州市", "西湖区"),
    Known("中山陵", 32.0640, 118.8483, "CN", "江苏省", "南京市", "玄武区"),
    Known("拙政园", 31.3240, 120.6290, "CN", "江苏省", "苏州市", "姑苏区"),
    Known("广州塔", 23.1064, 113.3245, "CN", "广东省", "广州市", "海珠区"),
    Known("世界之窗", 22.5366, 113.9730, "CN", "广东省", "深圳市", "南山区"),
    Known("大雁塔", 34.2196, 108.9642, "CN", "陕西省", "西安市", "雁塔区"),
    Known("兵马俑", 34.3853, 109.2785, "CN", "陕西省", "西安市", "临潼区"),
    Known("宽窄巷子", 30.6637, 104.0537, "CN", "四川省", "成都市", "青羊区"),
    Known("黄鹤楼", 30.5450, 114.3022, "CN", "湖北省", "武汉市", "武昌区"),
    Known("橘子洲", 28.1950, 112.9600, "CN", "湖南省", "长沙市", "岳麓区"),
    Known("布达拉宫", 29.6578, 91.1169, "CN", "西藏自治区", "拉萨市", "城关区"),
    Known("中央大街", 45.7730, 126.6170, "CN", "黑龙江省", "哈尔滨市", "道里区"),
    Known("沈阳故宫", 41.7960, 123.4500, "CN", "辽宁省", "沈阳市", "沈河区"),
    Known("曲阜孔庙", 35.5960, 116.9920, "CN", "山东省", "济宁市", "曲阜市"),
    Known("少林寺", 34.5070, 112.9350, "CN", "河南省", "郑州市", "登封市"),
    Known("龙门石窟", 34.5560, 112.4700, "CN", "河南省", "洛阳市", "洛龙区"),
    Known("黄山光明顶", 30.1310, 118.1640, "CN", "安徽省", "黄山市", "黄山区"),
    Known("滕王阁", 28.6810, 115.8800, "CN", "江西省", "南昌市", "东湖区"),
    Known("三坊七巷", 26.0840, 119.2920, "CN", "福建省", "福州市", "鼓楼区"),
    Known("象鼻山", 25.2669, 110.2961, "CN", "广西壮族自治区", "桂林市", "象山区"),
    Known("丽江古城", 26.8720, 100.2340, "CN", "云南省", "丽江市", "古城区"),
    Known("甲秀楼", 26.5780, 106.7130, "CN", "贵州省", "贵阳市", "南明区"),
    Known("中山桥", 36.0680, 103.8250, "CN", "甘肃省", "兰州市", "城关区"),
    Known("莫高窟", 40.0420, 94.8090, "CN", "甘肃省", "酒泉市", "敦煌市"),
    Known("塔尔寺", 36.4880, 101.5690, "CN", "青海省", "西宁市", "湟中区"),
    Known("西夏王陵", 38.4330, 105.9850, "CN", "宁夏回族自治区", "银川市", "西夏区"),
    Known("大召寺", 40.8040, 111.6560, "CN", "内蒙古自治区", "呼和浩特市", "玉泉区"),
    Known("晋祠", 37.7060, 112.4400, "CN", "山西省", "太原市", "晋源区"),
    Known("平遥古城", 37.2010, 112.1750, "CN", "山西省", "晋中市", "平遥县"),
    Known("避暑山庄", 40.9930, 117.9350, "CN", "河北省", "承德市", "双桥区"),
    Known("伪满皇宫", 43.9040, 125.3390, "CN", "吉林省", "长春市", "宽城区"),
    Known("喀什古城", 39.4700, 75.9900, "CN", "新疆维吾尔自治区", "喀什地区", "喀什市"),
    Known("东莞市区", 23.0205, 113.7518, "CN", "广东省", "东莞市", None),
    # Border areas, where the nearest district centre is the wrong answer
    Known("罗湖口岸", 22.5330, 114.1130, "CN", "广东省", "深圳市", "罗湖区", "border"),
    Known("拱北口岸", 22.2170, 113.5480, "CN", "广东省", "珠海市", "香洲区", "border"),
    Known("燕郊", 39.9560, 116.8160, "CN", "河北省", "廊坊市", "三河市", "border"),
    Known("花桥", 31.3020, 121.0990, "CN", "江苏省", "苏州市", "昆山市", "border"),
    Known("凤岗", 22.7450, 114.1400, "CN", "广东省", "东莞市", None, "border"),
    Known("满洲里", 49.5970, 117.3790, "CN", "内蒙古自治区", "呼伦贝尔市", "满洲里市", "border"),
    Known("瑞丽", 24.0130, 97.8520, "CN", "云南省", "德宏傣族景颇族自治州", "瑞丽市", "border"),
    Known("东兴", 21.5470, 107.9710, "CN", "广西壮族自治区", "防城港市", "东兴市", "border"),
    Known(
        "二连浩特", 43.6530, 111.9770, "CN", "内蒙古自治区", "锡林郭勒盟", "二连浩特市", "border"
    ),
    # Coast and islands
    Known("青岛栈桥", 36.0600, 120.3200, "CN", "山东省", "青岛市", "市南区", "coast"),
    Known("鼓浪屿", 24.4460, 118.0660, "CN", "福建省", "厦门市", "思明区", "coast"),
    Known("天涯海角", 18.2920, 109.3510, "CN", "海南省", "三亚市", "天涯区", "coast"),
    Known("星海广场", 38.8780, 121.5860, "CN", "辽宁省", "大连市", "沙河口区", "coast"),
    Known("北海银滩", 21.4080, 109.1460, "CN", "广西壮族自治区", "北海市", "银海区", "coast"),
    Known("普陀山", 30.0100, 122.3850, "CN", "浙江省", "舟山市", "普陀区", "coast"),
    Known("青岛近海", 36.0480, 120.3300, "CN", "山东省", "青岛市", "市南区", "coast"),
    # Hong Kong, Macao, Taiwan
    Known("尖沙咀钟楼", 22.2935, 114.1694, "HK", HK, HK, "油尖旺区", "hk_mo_tw"),
    Known("太平山顶", 22.2710, 114.1500, "HK", HK, HK, "中西区", "hk_mo_tw"),
    Known("香港国际机场", 22.3080, 113.9185, "HK", HK, HK, "离岛区", "hk_mo_tw"),
    Known("沙田", 22.3810, 114.1880, "HK", HK, HK, "沙田区", "hk_mo_tw"),
    Known("大三巴", 22.1975, 113.5409, "MO", MO, MO, None, "hk_mo_tw"),
    Known("澳门机场", 22.1496, 113.5920, "MO", MO, MO, None, "hk_mo_tw"),
    Known("台北101", 25.0340, 121.5645, "TW", TW, "台北市", None, "hk_mo_tw"),
    Known("日月潭", 23.8600, 120.9160, "TW", TW, "南投县", None, "hk_mo_tw"),
    Known("高雄85大楼", 22.6120, 120.3000, "TW", TW, "高雄市", None, "hk_mo_tw"),
    Known("花莲", 23.9770, 121.6040, "TW", TW, "花莲县", None, "hk_mo_tw"),
    # Abroad
    Known("东京塔", 35.6586, 139.7454, "JP", None, "东京", None, "abroad"),
    Known("大阪城", 34.6873, 135.5262, "JP", None, "大阪", None, "abroad"),
    Known("清水寺", 34.9949, 135.7850, "JP", None, "京都", None, "abroad"),
    Known("首尔市厅", 37.5665, 126.9780, "KR", None, "首尔", None, "abroad"),
    Known("釜山", 35.1796, 129.0756, "KR", None, "釜山", None, "abroad"),
    Known("曼谷大皇宫", 13.7500, 100.4913, "TH", None, "曼谷", None, "abroad"),
    Known("新加坡鱼尾狮", 1.2868, 103.8545, "SG", None, "新加坡", None, "abroad"),
    Known("双子塔", 3.1579, 101.7116, "MY", None, "吉隆坡", None, "abroad"),
    Known("河内还剑湖", 21.0285, 105.8542, "VN", None, "河内", None, "abroad"),
    Known("埃菲尔铁塔", 48.8584, 2.2945, "FR", None, "巴黎", None, "abroad"),
    Known("大本钟", 51.5007, -0.1246, "GB", None, "伦敦", None, "abroad"),
    Known("罗马斗兽场", 41.8902, 12.4922, "IT", None, "罗马", None, "abroad"),
    Known("勃兰登堡门", 52.5163, 13.3777, "DE", None, "柏林", None, "abroad"),
    Known("红场", 55.7539, 37.6208, "RU", None, "莫斯科", None, "abroad"),
    Known("时代广场", 40.7580, -73.9855, "US", None, "纽约", None, "abroad"),
    Known("洛杉矶市政厅", 34.0537, -118.2428, "US", None, "洛杉矶", None, "abroad"),
    Known("旧金山", 37.7793, -122.4193, "US", None, "旧金山", None, "abroad"),
    Known("悉尼歌剧院", -33.8568, 151.2153, "AU", None, "悉尼", None, "abroad"),
    Known("哈利法塔", 25.1972, 55.2744, "AE", None, "迪拜", None, "abroad"),
    Known("开罗", 30.0444, 31.2357, "EG", None, "开罗", None, "abroad"),
    Known("温哥华", 49.2827, -123.1207, "CA", None, "温哥华", None, "abroad"),
    Known("里约热内卢", -22.9068, -43.1729, "BR", None, "里约热内卢", None, "abroad"),
]
