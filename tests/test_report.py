"""The HTML report (reversenet/output/report.py): the files it writes, and the pages in a real browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from browser import open_page
from PIL import Image

from reversenet.output.report import write_report


def pictures(n: int, folder: str = "pictures") -> list[dict]:
    return [{"kind": "picture", "file": f"{folder}/p{i:04d}.png", "index": i} for i in range(n)]


def report(out: Path, records: list[dict], **kwargs) -> Path:
    args = {"title": "run", "config_text": "model: alexnet\n", "montages": [], "tables": [], **kwargs}
    return write_report(out, records=records, **args)


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


class Tags(HTMLParser):
    """Every start tag as (tag, attrs), in document order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def attr(self, tag: str, name: str) -> list[str]:
        return [a[name] for t, a in self.tags if t == tag and a.get(name) is not None]


def gallery_items(html: str) -> list[str]:
    """The HTML of each gallery item (the text between one `<div class="item">` and the next)."""
    gallery = html.split('<div class="gallery">', 1)[1]
    return gallery.split('<div class="item">')[1:]


# ----------------------------------------------------------------------------- files, no browser


def test_same_arguments_give_byte_identical_files(tmp_path):
    records = pictures(130) + [
        {"kind": "raw", "file": "pictures/p0003.npy", "shape": [3, 8, 8]},
        {"kind": "failed", "file": None, "photo": "x.jpg", "error": "boom", "sha256": "ab" * 32},
    ]
    kwargs = {
        "montages": [{"file": "montage.png", "title": "All"}],
        "tables": [{"title": "Stats", "columns": ["a", "b"], "rows": [[1, 0.5]], "csv": "stats.csv"}],
        "page_size": 50,
    }
    report(tmp_path / "a", records, **kwargs)
    report(tmp_path / "b", records, **kwargs)
    first = files(tmp_path / "a")
    assert list(first) == ["index.html", "report/page-2.html", "report/page-3.html"]
    assert first == files(tmp_path / "b")
    report(tmp_path / "a", records, **kwargs)  # again, over its own output
    assert files(tmp_path / "a") == first


def test_pages_of_page_size_and_stale_pages_removed(tmp_path):
    (tmp_path / "report").mkdir()
    for name in ("page-4.html", "page-12.html"):  # left by an earlier, larger run
        (tmp_path / "report" / name).write_text("stale")
    (tmp_path / "report" / "notes.txt").write_text("not ours")

    index = report(tmp_path, pictures(250), page_size=100)

    assert index == tmp_path / "index.html"
    assert sorted(files(tmp_path)) == [
        "index.html",
        "report/notes.txt",
        "report/page-2.html",
        "report/page-3.html",
    ]
    pages = [(tmp_path / p).read_text() for p in ("index.html", "report/page-2.html", "report/page-3.html")]
    assert [len(gallery_items(p)) for p in pages] == [100, 100, 50]
    assert "Pictures 1–100 of 250 · page 1 of 3" in pages[0]
    assert "Pictures 101–200 of 250 · page 2 of 3" in pages[1]
    assert "Pictures 201–250 of 250 · page 3 of 3" in pages[2]
    # page 1 links down into report/, pages 2.. link up and to their pictures via ../
    assert "report/page-2.html" in Tags(pages[0]).attr("a", "href")
    two = Tags(pages[1])
    assert {"../index.html", "../report/page-3.html"} <= set(two.attr("a", "href"))
    assert two.attr("img", "src")[0] == "../pictures/p0100.png"
    assert "<h2>Config</h2>" in pages[0] and "<h2>Config</h2>" not in pages[1]

    report(tmp_path, pictures(20), page_size=100)  # one page now: report/ keeps only what is not ours
    assert sorted(files(tmp_path)) == ["index.html", "report/notes.txt"]
    (tmp_path / "report" / "notes.txt").unlink()
    report(tmp_path, pictures(250), page_size=100)
    report(tmp_path, pictures(20), page_size=100)
    assert not (tmp_path / "report").exists()  # emptied, so removed


def test_page_size_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="page_size"):
        report(tmp_path, pictures(3), page_size=0)


def test_no_records_gives_one_page(tmp_path):
    report(tmp_path, [])
    assert list(files(tmp_path)) == ["index.html"]
    assert "No pictures." in (tmp_path / "index.html").read_text()


def test_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    records = [
        {"kind": "picture", "file": "a.png", "note": evil},
        {"kind": "failed", "file": None, "photo": "b.jpg", "error": evil},
    ]
    tables = [{"title": evil, "columns": [evil], "rows": [[evil]], "csv": None}]
    report(tmp_path, records, title=evil, config_text=evil, tables=tables,
           montages=[{"file": "m.png", "title": evil}])  # fmt: skip
    html = (tmp_path / "index.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 8  # title x2, config, montage alt + caption, table x3, note, error


def test_file_names_are_percent_quoted_in_links(tmp_path):
    names = [
        "odd dir/a b.png",
        "odd dir/c#1.png",
        "odd dir/100%.png",
        "odd dir/ünï 猫.png",
        "odd dir/q?x='\".png",
    ]
    quoted = [
        "odd%20dir/a%20b.png",
        "odd%20dir/c%231.png",
        "odd%20dir/100%25.png",
        "odd%20dir/%C3%BCn%C3%AF%20%E7%8C%AB.png",
        "odd%20dir/q%3Fx%3D%27%22.png",
    ]
    records = [{"kind": "picture", "file": n} for n in names] * 2  # page 1 and page 2
    tables = [{"title": "t", "columns": ["x"], "rows": [[1]], "csv": "my table#1.csv"}]
    report(tmp_path, records, page_size=len(names), tables=tables,
           montages=[{"file": "all 100%.png", "title": "m"}])  # fmt: skip

    one = Tags((tmp_path / "index.html").read_text())
    assert one.attr("img", "src") == ["all%20100%25.png", *quoted]
    assert {"my%20table%231.csv", "all%20100%25.png", *quoted} <= set(one.attr("a", "href"))
    two = Tags((tmp_path / "report/page-2.html").read_text())
    assert two.attr("img", "src") == ["../" + q for q in quoted]
    html = (tmp_path / "index.html").read_text()
    assert ">odd dir/ünï 猫.png</a>" in html  # the text is the name as is


def test_absolute_paths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="relative"):
        report(tmp_path, [{"kind": "picture", "file": "/etc/a.png"}])


def test_failed_records_in_the_failures_table(tmp_path):
    records = [
        *pictures(2),
        {
            "kind": "failed",
            "file": None,
            "photo": "photos/cat.jpg",
            "error": "CUDA out of memory",
            "variant": "salinet",
        },
    ]
    report(tmp_path, records)
    html = (tmp_path / "index.html").read_text()
    assert "2 pictures · 1 failure · 1 page" in html
    table = re.search(
        r'<h2 class="failures">Failures \(1\)</h2>\s*<table class="failures">(.*?)</table>', html, re.DOTALL
    )
    assert table, html
    assert "<td>photos/cat.jpg</td><td>CUDA out of memory</td>" in table.group(1)
    assert "<dt>variant</dt><dd>salinet</dd>" in table.group(1)
    assert len(gallery_items(html)) == 2  # not in the gallery
    assert "cat.jpg" not in html.split('<div class="gallery">', 1)[1]


def test_no_failures_no_failures_table(tmp_path):
    report(tmp_path, pictures(2))
    assert "Failures" not in (tmp_path / "index.html").read_text()


def test_table_floats_to_three_decimals(tmp_path):
    table = {
        "title": "Timings",
        "columns": ["variant", "seconds", "n", "ok", "none"],
        "rows": [
            ["deconvnet", 0.123456, 7, True, None],
            ["salinet", 2.0, 12, False, None],
            ["x", 1e-4, 0, True, None],
        ],
        "csv": "timings.csv",
    }
    report(tmp_path, [], tables=[table])
    html = (tmp_path / "index.html").read_text()
    body = re.search(r"<h2>Timings</h2>\s*<table>(.*?)</table>", html, re.DOTALL).group(1)
    cells = re.findall(r"<td( class=\"number\")?>(.*?)</td>", body)
    assert [text for _, text in cells] == [
        "deconvnet", "0.123", "7", "true", "",
        "salinet", "2.000", "12", "false", "",
        "x", "0.000", "0", "true", "",
    ]  # fmt: skip
    assert [bool(number) for number, _ in cells[:5]] == [False, True, True, False, False]
    assert "<th>seconds</th>" in html
    assert '<a href="timings.csv">timings.csv</a> (CSV)' in html


def test_raw_and_metric_files_beside_their_picture(tmp_path):
    records = [
        {"kind": "raw", "file": "v/a.npy"},  # before its picture: still beside it
        {"kind": "picture", "file": "v/a.png"},
        {"kind": "metric", "file": "v/a.json", "score": 0.5},
        {"kind": "picture", "file": "v/b.png"},
        {"kind": "raw", "file": "v/lone.npy", "shape": [1, 2]},  # no picture: an item of its own
        {"kind": "montage", "file": "v/m.png"},  # never in the gallery
    ]
    report(tmp_path, records)
    html = (tmp_path / "index.html").read_text()
    items = gallery_items(html)
    assert len(items) == 3
    a, b, lone = (Tags(i) for i in items)
    assert a.attr("img", "src") == ["v/a.png"]
    assert a.attr("a", "href") == ["v/a.png", "v/a.png", "v/a.npy", "v/a.json"]
    assert '>raw</a> · <a href="v/a.json" title="kind: metric\nscore: 0.5">metric</a>' in items[0]
    assert b.attr("a", "href") == ["v/b.png", "v/b.png"]
    assert lone.attr("img", "src") == [] and lone.attr("a", "href") == ["v/lone.npy"]
    assert "<dd>[1, 2]</dd>" in items[2]
    assert "1 montage" in html and "v/m.png" not in html


def test_a_picture_without_a_file_is_an_item_without_an_image(tmp_path):
    report(tmp_path, [{"kind": "picture", "file": None, "index": 3}, *pictures(1)])
    items = gallery_items((tmp_path / "index.html").read_text())
    assert len(items) == 2
    assert '<div class="file">(no file)</div>' in items[0] and "<img" not in items[0]


def test_long_hashes_are_abbreviated(tmp_path):
    digest = "0123456789abcdef" * 4
    report(tmp_path, [{"kind": "picture", "file": "a.png", "sha256": digest, "short": "abc"}])
    html = (tmp_path / "index.html").read_text()
    assert f'<span class="hash" title="{digest}">0123456789ab…</span>' in html
    assert "<dd>abc</dd>" in html


# ----------------------------------------------------------------------------- in a real browser


def png(path: Path, i: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 8), (i * 37 % 256, i * 91 % 256, 128)).save(path)


@pytest.fixture(scope="module")
def browser_report(tmp_path_factory):
    """A run folder with real PNGs: a montage, a table, 150 pictures (odd names too), 2 pages."""
    out = tmp_path_factory.mktemp("run")
    records = []
    for i in range(150):
        name = f"pictures/p{i:03d}.png" if i % 25 else f"odd dir/#{i} 100% ünï.png"
        png(out / name, i)
        records.append({"kind": "picture", "file": name, "index": i, "layer": "conv5"})
        if i % 10 == 0:
            raw = name.removesuffix(".png") + ".npy"
            (out / raw).write_bytes(b"\x93NUMPY")
            records.append({"kind": "raw", "file": raw})
    records.append({"kind": "failed", "file": None, "photo": "photos/x.jpg", "error": "cannot read"})
    png(out / "montage all.png", 0)
    (out / "stats.csv").write_text("a,b\n1,0.5\n")
    write_report(
        out,
        title="Browser <check>",
        config_text="model: alexnet\n",
        records=records,
        montages=[{"file": "montage all.png", "title": "All pictures"}],
        tables=[{"title": "Stats", "columns": ["a", "b"], "rows": [[1, 0.5]], "csv": "stats.csv"}],
        page_size=100,
    )
    return out


@pytest.mark.browser
@pytest.mark.parametrize("page,count", [("index.html", 101), ("report/page-2.html", 50)])
def test_pages_load_in_a_browser(browser, browser_report, page, count):
    images, severe = open_page(browser, browser_report / page)
    assert len(images) == count  # page 1: the montage and 100 pictures
    assert [src for src, width in images if width == 0] == []  # every image loaded
    assert {width for _, width in images} == {12}
    assert severe == []
    # every link leads to a file that is there (quoted names included)
    hrefs = browser.execute_script("return Array.from(document.links, (a) => a.href)")
    assert hrefs
    for href in hrefs:
        url = urlparse(href)
        assert url.scheme == "file" and not url.fragment, href
        assert Path(unquote(url.path)).is_file(), href
    assert browser.title == "Browser <check>" + ("" if page == "index.html" else " · page 2")


@pytest.mark.browser
def test_browser_check_sees_a_broken_image(browser, tmp_path):
    """The checks above are not vacuous: a missing image shows as naturalWidth 0 and a SEVERE entry."""
    png(tmp_path / "ok.png", 1)
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>b</title><link rel="icon" href="data:,">'
        '</head><body><img src="ok.png"><img src="missing.png" loading="lazy"></body></html>'
    )
    images, severe = open_page(browser, page)
    assert images == [["ok.png", 12], ["missing.png", 0]]
    assert any("missing.png" in e["message"] for e in severe), severe
