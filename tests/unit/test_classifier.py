"""The keyword classifier on realistic Chinese and English descriptions."""

from __future__ import annotations

import pytest

from grid.classifier import DEFAULT_THRESHOLD, Classifier, bigrams, tokens
from grid.taxonomy import default_taxonomy, extension_files, load_taxonomy

# (description, expected best type code or None = unclassified). Realistic reports as a
# supervisor, a hotline operator or a citizen would phrase them.
CASES = [
    ("路口井盖丢了很危险", "0101"),
    ("人行道上的窨井盖破了一个大洞", "0101"),
    ("井盖松动，车开过去咣当响", "0116"),
    ("电线掉下来了，挂在路中间", "0102"),
    ("someone posted small ads on the lamp post", "0701"),
    ("墙上贴满了办证小广告", "0701"),
    ("小区楼道里堆满杂物", "0602"),
    ("楼下绿地被人种了菜", "0603"),
    ("有人在小区公共车位上私装地锁", "0604"),
    ("菜场门口很多小贩摆摊，堵住了路", "0901"),
    ("street vendors gathering at the metro exit every evening", "0901"),
    ("邻居在楼顶违法搭建了一间阳光房", "0801"),
    ("大楼外面挂了一个没审批的巨大广告牌", "0702"),
    ("路边有一袋垃圾没人清理", "0601"),
    ("some litter on the sidewalk near the bus stop", "0601"),
    ("路灯不亮已经三天了", "0110"),
    ("the street light outside number 5 is out", "0110"),
    ("楼道里有很浓的煤气味", "1002"),
    ("马路上水管爆了，水一直往外冒", "1003"),
    ("路面突然塌陷出现一个大坑", "1001"),
    ("小区门口汽车乱停放堵住消防通道", "0904"),
    ("消防通道被杂物堵住了", "0912"),
    ("电梯坏了好几天没人修", "0505"),
    ("有人被困在电梯里", "1010"),
    ("台风把行道树吹倒了，压在路上", "0401"),
    ("红绿灯不亮", "0204"),
    ("traffic light at the junction is broken", "0204"),
    ("two cars crashed at the crossroads", "1008"),
    ("广场舞音乐太吵", "0909"),
    ("路边有人露天烧烤烟很大", "0610"),
    ("共享单车堆满了人行道", "0905"),
    ("路上有个大坑", "0201"),
    ("big pothole on the road", "0201"),
    ("垃圾桶坏了", "0302"),
    ("垃圾桶满了溢出来", "0614"),
    ("河道里漂浮着很多垃圾", "0607"),
    ("工地半夜施工噪音很大", "0802"),
    ("有人从窗户拉电线给电瓶车充电", "0913"),
    ("单元门门禁坏了", "0504"),
    ("asdfghjkl qwerty", None),
    ("今天天气很好", None),
    ("lorem ipsum dolor sit amet", None),
    ("你好", None),
    ("123456", None),
    ("the manhole cover is missing at the crossing, very dangerous", "0101"),
    ("power line down across the road after the storm", "0102"),
    ("garbage bags thrown on the pavement", "0601"),
    ("residents keep piling junk in the stairwell", "0602"),
    ("someone is growing vegetables on the community lawn", "0603"),
    ("neighbour fenced off part of the common area for private use", "0604"),
    ("小区门口电线杆上贴了很多小广告", "0701"),
    ("illegal billboard on the rooftop", "0702"),
    ("someone built an illegal extension on the roof", "0801"),
    ("hawkers selling fruit on the pavement outside the market", "0901"),
    ("cars illegally parked on the sidewalk", "0904"),
    ("I can smell gas in the hallway", "1002"),
    ("a water main burst and water is gushing onto the street", "1003"),
    ("a shop is on fire", "1007"),
    ("the road is flooded after heavy rain", "1004"),
    ("a tree fell across the road", "0401"),
    ("there is a dead cat on the road", "0612"),
    ("abandoned car has been parked here for months", "0613"),
    ("dog poop everywhere on the lawn", "0911"),
    ("black taxis touting at the station", "0907"),
    ("群租房里住了二十多个人", "0914"),
    ("楼上装修把承重墙拆了", "0810"),
    ("施工材料堆在马路上占道", "0805"),
    ("渣土车一路撒漏", "0804"),
    ("工地扬尘很大没有覆盖", "0803"),
    ("沿街晾晒衣服影响市容", "0611"),
    ("墙上被人喷涂了办证号码", "0703"),
    ("地铁口有人派发传单", "0704"),
    ("路面结冰很滑", "1005"),
    ("下水道堵了污水冒出来", "1006"),
    ("整栋楼停电了", "1011"),
    ("楼道灯不亮", "0506"),
    ("顶楼漏雨", "0507"),
    ("外墙瓷砖脱落", "0502"),
    ("公厕堵塞了很臭", "0301"),
    ("公园长椅坏了", "0409"),
    ("道路护栏被撞坏了", "0206"),
    ("桥栏杆断了", "0211"),
    ("水表箱盖子坏了", "0105"),
    ("配电箱门开着很危险", "0107"),
    ("排水沟盖板坏了", "0103"),
    ("路边堆了一堆建筑垃圾", "0605"),
    ("有人在空地焚烧垃圾", "0609"),
    ("地铁站有人乞讨", "0906"),
    ("路边有修车摊占道修车", "0908"),
    ("饭店油烟太大", "0910"),
    ("东门路口有个下水道盖子不见了", "0101"),
    ("manhole cover broken in front of the school gate", "0101"),
    ("一根电线垂到人行道上了", "0102"),
    ("草丛边上有人扔了几个饮料瓶", "0601"),
    ("楼梯间被邻居放满了纸箱和旧家具", "0602"),
    ("小区里有人把草坪挖了种葱", "0603"),
    ("楼顶平台被一户人家占用搭了鸽棚", "0604"),
    ("电梯口贴满了开锁小广告", "0701"),
    ("商场外墙新装的大型广告牌没有审批", "0702"),
    ("一楼住户在院子里违章搭建了一个棚子", "0801"),
    ("地铁站出口每天晚上聚集了十几个流动摊贩", "0901"),
    ("人行道上停满了汽车", "0904"),
    ("路口电瓶车乱停", "0905"),
    ("这条路晚上路灯全都不亮", "0110"),
    ("十字路口信号灯坏了", "0204"),
    ("马路中间有一个很深的坑洼", "0201"),
    ("水管破裂，路面都是水", "1003"),
    ("地面塌陷了一个洞", "1001"),
    ("楼里着火了冒出浓烟", "1007"),
    ("两辆车追尾了", "1008"),
    ("商场安全出口被货物堵住", "0912"),
    ("楼下KTV噪音太大", "0909"),
    ("夜里烧烤摊油烟很大", "0610"),
    ("路中间有只死老鼠", "0612"),
    ("小区电梯又停运了", "0505"),
    ("the rubbish bin on the corner is broken", "0302"),
    ("the trash bins are overflowing", "0614"),
    ("a car is double parked blocking the lane", "0904"),
    ("a big branch fell off a tree onto the sidewalk", "0401"),
    ("lots of plastic floating in the canal", "0607"),
    ("请问明天几点开会", None),
    ("the weather is nice today", None),
    ("我想咨询一下社保政策", None),
]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(default_taxonomy())


@pytest.mark.parametrize(("description", "expected"), CASES)
def test_realistic_descriptions(clf, description, expected):
    best = clf.best(description)
    got = best.type_code if best else None
    assert got == expected, clf.classify(description, top=3)


@pytest.mark.parametrize("description", ["", "   ", "!!!", "asdf", "的了吗", "ok thanks"])
def test_empty_and_gibberish_are_unclassified(clf, description):
    assert clf.best(description) is None


def test_brief_examples_with_matched_keywords(clf):
    cover = clf.best("路口井盖丢了很危险")
    assert cover is not None and cover.type_code == "0101"
    assert "井盖丢" in cover.matched
    ads = clf.best("someone posted small ads on the lamp post")
    assert ads is not None and ads.type_code == "0701"
    assert "small ads" in ads.matched
    clutter = clf.best("小区楼道里堆满杂物")
    assert clutter is not None and clutter.type_code == "0602"
    assert {"楼道", "杂物"} <= set(clutter.matched)


def test_ranking_is_sorted_bounded_and_limited(clf):
    found = clf.classify("小区门口汽车乱停放堵住消防通道", top=3)
    assert len(found) == 3
    assert [c.type_code for c in found[:2]] == ["0904", "0912"]
    scores = [c.score for c in found]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s < 1 for s in scores)
    assert len(clf.classify("小区门口汽车乱停放堵住消防通道", top=1)) == 1


def test_longer_match_outweighs_shorter(clf):
    # "井盖松动" (4 chars, 0116) beats the bare "井盖" (2 chars, 0101)
    found = clf.classify("井盖松动")
    assert [c.type_code for c in found[:2]] == ["0116", "0101"]
    assert found[0].score > found[1].score


def test_nested_keywords_count_once(clf):
    # "井盖缺失" contains "井盖": the type scores the longer keyword only
    (best,) = clf.classify("井盖缺失", top=1)
    assert best.matched == ["井盖缺失"]


def test_fuzzy_bigrams_are_reported_and_weak(clf):
    # no keyword matches in full, only a shared bigram: ranked, but below the threshold
    weak = clf.classify("停放")
    assert weak and all(m.startswith("~") for c in weak for m in c.matched)
    assert weak[0].score < DEFAULT_THRESHOLD
    assert clf.best("停放") is None
    assert Classifier(default_taxonomy(), fuzzy=False).classify("停放") == []


def test_full_width_and_case_are_normalised(clf):
    for text in ("SMALL ADS ON THE WALL", "ｓｍａｌｌ　ａｄｓ on the wall"):
        best = clf.best(text)
        assert best is not None and best.type_code == "0701"


def test_english_stemming_matches_inflections():
    assert tokens("Cars crashed, bins overflowing; flies") == [
        "car", "crash", "bin", "overflow", "fly",
    ]  # fmt: skip
    assert bigrams("井盖 丢了") == {"井盖", "丢了"}


def test_threshold_decides_unclassified(clf):
    best = clf.best("路上有个大坑")
    assert best is not None and best.score < 0.6
    assert clf.best("路上有个大坑", threshold=0.6) is None
    assert clf.best("路上有个大坑", threshold=0.0) == best


def test_deterministic_across_instances():
    a = Classifier(load_taxonomy())
    b = Classifier(load_taxonomy())
    for description, _ in CASES:
        assert a.classify(description) == b.classify(description)


def test_every_type_is_reachable_by_its_own_name(clf):
    tax = clf.taxonomy
    for t in tax.types.values():
        for name in (t.name_zh, t.name_en):
            best = clf.best(name)
            assert best is not None and best.type_code == t.code, (t.code, name)


def test_extension_types_are_classified():
    clf = Classifier(load_taxonomy(extension_files()))
    best = clf.best("巷子里有个黑诊所在给人打针")
    assert best is not None and best.type_code == "1403"
    best = clf.best("the river is full of dead fish near the sewage outfall")
    assert best is not None and best.type_code == "1301"
