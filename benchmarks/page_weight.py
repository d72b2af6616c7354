"""Benchmark: the participant survey page's first load, in bytes on the wire.

Budget (DESIGN.md): participant survey page, first load <= 60 KB over the wire (compressed) with
all its CSS/JS; no third-party host; no JS framework.

A real server, as a phone sees it: a fresh SQLite database seeded with a demo cohort, static
files collected (WhiteNoise serves them precompressed), gunicorn with the production settings.
The client follows a participant's personal link (which starts the session and redirects to
/p/), takes the survey link from the home page and loads the survey page with a phone browser's
request headers, then every same-origin resource that first load fetches: the stylesheets,
scripts, images and manifest the page names, what the stylesheets import, the manifest's icons,
the service worker the script registers, and what the service worker imports or caches at
install (URLs fetched once already come from the HTTP cache, as in a browser, when the first
response allowed caching). /favicon.ico is counted too when the page names no icon, as browsers
ask for it.

Each response is counted as the bytes the server sent for it: the status line and headers plus
the body as sent (compressed where the server compressed it). TCP and TLS framing are left out.
Every language the page offers is measured (a new, empty browser cache each time); the verdict
is on the heaviest.

The app runs with the production settings behind its usual TLS-terminating proxy, which is
played by the client sending `X-Forwarded-Proto: https`: nothing is redirected, the cookies are
`Secure` and sent back as a browser on HTTPS would, and the response headers (HSTS and the rest)
are those a phone receives.

    .venv/bin/python benchmarks/page_weight.py [--participants 20] [--seed 1] [--repeat 5]

Exits 1 if the first load is over budget, 2 if a resource is on another host or a script looks
like a JS framework.
"""

import argparse
import gzip
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 60 * 1024
HOST = "127.0.0.1"
# What Chrome on Android sends on HTTPS.
USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
ACCEPT = {
    "document": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8",
    "style": "text/css,*/*;q=0.1",
    "script": "*/*",
    "image": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "manifest": "*/*",
}
# Markers of the common JS frameworks and libraries, looked for in every script fetched.
FRAMEWORKS = re.compile(
    r"\b(react(?:-dom)?|preact|vue(?:\.js)?|angular(?:js)?|jquery|htmx|alpine(?:js)?|svelte|"
    r"ember|backbone|knockout|stimulus|lit-element|mithril|solid-js|qwik)\b",
    re.IGNORECASE,
)


# --- The server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def environment(tmp: Path, port: int) -> dict:
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
        },
        "DJANGO_SETTINGS_MODULE": "recovery.settings.production",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": HOST,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CONTACT_LOOKUP_KEY": "benchmark-only-lookup-key",
        "EMAIL_URL": "consolemail://",
        "SITE_URL": f"http://{HOST}:{port}",
        "VAR_DIR": str(tmp / "var"),
        "DJANGO_STATIC_ROOT": str(tmp / "static"),
        "DJANGO_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def prepare(env: dict, participants: int, seed: int) -> str:
    """Fresh database and static files, a demo cohort; the path of a participant's new personal
    link (one with a survey open now, as seed_demo picks)."""
    Path(env["VAR_DIR"]).mkdir()
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    out = manage(
        env,
        "seed_demo",
        "--participants",
        str(participants),
        "--seed",
        str(seed),
        "--study",
        "demo",
    )
    found = re.search(r"personal link \(([^)]+)\)", out)
    if found is None:
        raise SystemExit(f"seed_demo named no participant:\n{out}")
    link = manage(
        env, "participant_link", "--study", "demo", "--participant", found.group(1)
    ).strip()
    return urllib.parse.urlsplit(link).path


def wait_for_server(port: int, server: subprocess.Popen) -> None:
    for _ in range(120):
        if server.poll() is not None:
            raise SystemExit("gunicorn exited at start")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    raise SystemExit("gunicorn did not start")


# --- The client -----------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """The socket's incoming bytes, kept, so that what the server sent can be counted."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.data = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.sock.recv_into(buffer)
        self.data += memoryview(buffer)[:n]
        return n


class _Socket:
    """What http.client.HTTPResponse needs of a socket: makefile()."""

    def __init__(self, reader: io.BufferedReader):
        self.reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return self.reader


@dataclass
class Fetched:
    url: str
    kind: str
    status: int
    headers: http.client.HTTPMessage
    header_bytes: int  # status line and headers, as sent
    body_bytes: int  # body as sent (compressed, with any chunked framing)
    body: bytes  # body decoded (decompressed)

    @property
    def wire(self) -> int:
        return self.header_bytes + self.body_bytes

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0]

    @property
    def encoding(self) -> str:
        return self.headers.get("Content-Encoding") or "identity"

    def cacheable(self) -> bool:
        control = (self.headers.get("Cache-Control") or "").lower()
        if "no-store" in control or "no-cache" in control:
            return False
        max_age = re.search(r"max-age=(\d+)", control)
        return bool(max_age and int(max_age.group(1)) > 0)


@dataclass
class Client:
    port: int
    cookies: dict = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"https://{HOST}:{self.port}"

    def fetch(self, url: str, kind: str, method: str = "GET", form: dict | None = None) -> Fetched:
        """One request on a new connection (gunicorn's sync workers close each one); every
        byte the server sent is read and counted."""
        path = urllib.parse.urlsplit(url).path or "/"
        query = urllib.parse.urlsplit(url).query
        target = f"{path}?{query}" if query else path
        headers = {
            "Host": f"{HOST}:{self.port}",
            "User-Agent": USER_AGENT,
            "Accept": ACCEPT.get(kind, "*/*"),
            "Accept-Encoding": ACCEPT_ENCODING,
            "Accept-Language": "en-US,en;q=0.9",
            # The TLS-terminating proxy in front of gunicorn says the request came over HTTPS.
            "X-Forwarded-Proto": "https",
        }
        if kind == "worker":
            headers["Service-Worker"] = "script"
        body = b""
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + path
        if body or method == "POST":
            headers["Content-Length"] = str(len(body))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        with socket.create_connection((HOST, self.port), timeout=30) as sock:
            sock.sendall(request.encode("latin-1") + b"\r\n" + body)
            counter = _CountingReader(sock)
            reader = io.BufferedReader(counter)
            response = http.client.HTTPResponse(_Socket(reader), method=method)  # type: ignore[arg-type]
            response.begin()
            raw = response.read()
            # Whatever follows, up to the server's close (the reader may be closed by now).
            while counter.readinto(bytearray(65536)):
                pass
        sent = bytes(counter.data)
        header_bytes = sent.index(b"\r\n\r\n") + 4
        for cookie in response.headers.get_all("Set-Cookie") or []:
            for morsel in SimpleCookie(cookie).values():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(morsel.key, None)
                else:
                    self.cookies[morsel.key] = morsel.value
        fetched = Fetched(
            url=url,
            kind=kind,
            status=response.status,
            headers=response.headers,
            header_bytes=header_bytes,
            body_bytes=len(sent) - header_bytes,
            body=decode(raw, response.headers.get("Content-Encoding") or "identity", url),
        )
        return fetched


def decode(raw: bytes, encoding: str, url: str) -> bytes:
    if encoding == "identity":
        return raw
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "br":
        import brotli  # only if the server ever sends Brotli (WhiteNoise does with it installed)

        return brotli.decompress(raw)
    raise SystemExit(f"{url}: unexpected Content-Encoding {encoding!r}")


# --- What a page loads ----------------------------------------------------------------------

LOADING_RELS = {
    "stylesheet",
    "manifest",
    "icon",
    "shortcut",
    "apple-touch-icon",
    "preload",
    "modulepreload",
    "prefetch",
}
ELEMENT_SOURCES = {
    "script": ("src", "script"),
    "img": ("src", "image"),
    "iframe": ("src", "document"),
    "audio": ("src", "media"),
    "video": ("src", "media"),
    "source": ("src", "media"),
    "track": ("src", "media"),
    "embed": ("src", "media"),
    "object": ("data", "media"),
    "input": ("src", "image"),
}


class PageParser(HTMLParser):
    """The resources an HTML page makes the browser fetch, and the links and forms on it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.resources: list[tuple[str, str]] = []  # (url, kind)
        self.other_urls: list[str] = []  # named but not loaded (e.g. preconnect)
        self.anchors: list[str] = []
        self.has_icon = False
        self.forms: list[dict] = []
        self._in_style = False
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & {"icon", "apple-touch-icon"}:
                self.has_icon = True
            if "stylesheet" in rels:
                self.resources.append((a["href"], "style"))
            elif "manifest" in rels:
                self.resources.append((a["href"], "manifest"))
            elif rels & LOADING_RELS:
                self.resources.append((a["href"], "image" if "icon" in rels else "other"))
            else:
                self.other_urls.append(a["href"])
        elif tag in ELEMENT_SOURCES:
            attr, kind = ELEMENT_SOURCES[tag]
            if a.get(attr) and not (tag == "input" and a.get("type") != "image"):
                self.resources.append((a[attr], kind))
        if a.get("srcset"):
            for candidate in a["srcset"].split(","):
                if candidate.strip():
                    self.resources.append((candidate.split()[0], "image"))
        if tag == "video" and a.get("poster"):
            self.resources.append((a["poster"], "image"))
        if a.get("style"):
            self.resources.extend((u, "image") for u in css_urls(a["style"]))
        if tag == "style":
            self._in_style = True
        if tag == "a" and a.get("href"):
            self.anchors.append(a["href"])
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "options": []})
        if tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        if tag == "select" and self.forms:
            self._select = a.get("name")
        if tag == "option" and self.forms and self._select:
            self.forms[-1]["options"].append((self._select, a.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._in_style:
            self.resources.extend((u, "image") for u in css_urls(data))


def css_urls(css: str) -> list[str]:
    found = re.findall(r"""url\(\s*['"]?([^'")\s]+)""", css)
    found += re.findall(r"""@import\s+['"]([^'"]+)""", css)
    return [u for u in found if not u.startswith("data:")]


def script_urls(source: str) -> list[tuple[str, str]]:
    """What a script obviously fetches as it starts: a service worker it registers, scripts it
    imports, files its service worker caches at install."""
    found = [
        (u, "worker") for u in re.findall(r"""serviceWorker\.register\(\s*['"]([^'"]+)""", source)
    ]
    for args in re.findall(r"importScripts\(([^)]*)\)", source):
        found += [(u, "script") for u in re.findall(r"""['"]([^'"]+)['"]""", args)]
    assets = re.search(r"var ASSETS = (\[[^\]]*\])", source)
    if assets:
        found += [(u, "cached") for u in json.loads(assets.group(1))]
    return found


# --- A first load ---------------------------------------------------------------------------


@dataclass
class Load:
    language: str
    rows: list = field(default_factory=list)  # (Fetched, note)
    foreign: list = field(default_factory=list)  # (url, named by)
    frameworks: list = field(default_factory=list)  # (url, marker)
    cached: list = field(default_factory=list)  # (url, named by): again, from the HTTP cache

    @property
    def total(self) -> int:
        return sum(f.wire for f, _ in self.rows)

    def part(self, kinds: set[str]) -> int:
        return sum(f.wire for f, _ in self.rows if f.kind in kinds)


def first_load(client: Client, survey: Fetched, language: str) -> Load:
    """The survey page (already fetched) and every same-origin resource it loads at first load,
    each URL once; a repeated URL comes from the HTTP cache if its first response was
    cacheable."""
    load = Load(language=language)
    load.rows.append((survey, "(the survey page)"))
    seen: dict[str, Fetched] = {}
    page = PageParser()
    page.feed(survey.body.decode())
    queue = [(urllib.parse.urljoin(survey.url, u), k, "the page") for u, k in page.resources]
    if not page.has_icon:
        queue.append((urllib.parse.urljoin(survey.url, "/favicon.ico"), "image", "the browser"))
    own = urllib.parse.urlsplit(survey.url).netloc
    for url in page.other_urls:  # named, not loaded (a preconnect still reaches the host)
        if urllib.parse.urlsplit(urllib.parse.urljoin(survey.url, url)).netloc != own:
            load.foreign.append((url, "the page"))
    while queue:
        url, kind, named_by = queue.pop(0)
        url = urllib.parse.urldefrag(url).url
        if urllib.parse.urlsplit(url).netloc != own:
            load.foreign.append((url, named_by))
            continue
        if url in seen:
            if not seen[url].cacheable():
                fetched = client.fetch(url, "script" if kind == "cached" else kind)
                load.rows.append((fetched, f"again ({named_by}; not cacheable)"))
            else:
                load.cached.append((url, named_by))
            continue
        fetched = client.fetch(url, "script" if kind == "cached" else kind)
        seen[url] = fetched
        note = named_by if fetched.status == 200 else f"{named_by}; HTTP {fetched.status}"
        load.rows.append((fetched, note))
        name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
        if fetched.status != 200:
            continue
        if kind == "style":
            queue += [
                (urllib.parse.urljoin(url, u), "image", name)
                for u in css_urls(fetched.body.decode())
            ]
        elif kind in ("script", "worker", "cached") and "javascript" in fetched.content_type:
            source = fetched.body.decode()
            marker = FRAMEWORKS.search(source) or FRAMEWORKS.search(name)
            if marker:
                load.frameworks.append((url, marker.group(0)))
            queue += [(urllib.parse.urljoin(url, u), k, name) for u, k in script_urls(source)]
        elif kind == "manifest":
            data = json.loads(fetched.body)
            queue += [
                (urllib.parse.urljoin(url, icon["src"]), "image", name)
                for icon in data.get("icons", [])
            ]
    return load


def language_switch(client: Client, page: Fetched, language: str) -> None:
    """The page's language form, as a participant would use it."""
    parser = PageParser()
    parser.feed(page.body.decode())
    form = next(f for f in parser.forms if any(n == "language" for n, _ in f["options"]))
    reply = client.fetch(
        urllib.parse.urljoin(page.url, form["action"]),
        "document",
        method="POST",
        form={**form["fields"], "language": language},
    )
    if reply.status != 302:
        raise SystemExit(f"switching to {language!r} answered HTTP {reply.status}")


def languages_offered(page: Fetched) -> list[str]:
    parser = PageParser()
    parser.feed(page.body.decode())
    return [v for f in parser.forms for n, v in f["options"] if n == "language"]


def short(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return path if len(path) <= 40 else path[:20] + "…" + path[-19:]


def print_load(load: Load, survey_sizes: list[int]) -> None:
    print(f"\nFirst load of the survey page, language {load.language!r}:\n")
    print(
        "| resource | loaded by | content-type | encoding | headers | body on the wire "
        "| total on the wire | uncompressed body |"
    )
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for f, note in load.rows:
        print(
            f"| `{short(f.url)}` | {note} | {f.content_type or '—'} | {f.encoding} | "
            f"{f.header_bytes:,} | {f.body_bytes:,} | {f.wire:,} | {len(f.body):,} |"
        )
    print(
        f"| **total** | | | | {sum(f.header_bytes for f, _ in load.rows):,} | "
        f"{sum(f.body_bytes for f, _ in load.rows):,} | **{load.total:,}** | "
        f"{sum(len(f.body) for f, _ in load.rows):,} |"
    )
    if load.cached:
        names = dict.fromkeys(
            urllib.parse.urlsplit(u).path.rsplit("/", 1)[-1] for u, _ in load.cached
        )
        named_by = ", ".join(dict.fromkeys(by for _, by in load.cached))
        print(
            f"\nNamed again by {named_by} (importScripts, the install cache), served from the "
            f"HTTP cache and not counted: {', '.join(names)}."
        )
    print(
        f"\nThe page's HTML on the wire over {len(survey_sizes)} request(s): "
        f"{min(survey_sizes):,}–{max(survey_sizes):,} bytes (the gzip padding against BREACH "
        "varies); the table shows the largest."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=5, help="Requests of the page per language (largest kept)."
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="page-weight-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = environment(tmp, port)
        link = prepare(env, args.participants, args.seed)
        log = (tmp / "gunicorn.log").open("w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "recovery.wsgi:application",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_server(port, server)
            loads = measure(Client(port=port), link, args.repeat)
        except BaseException:
            log.flush()
            print((tmp / "gunicorn.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    report(loads)


def measure(client: Client, link: str, repeat: int) -> list[tuple[Load, list[int]]]:
    base = client.origin
    opened = client.fetch(base + link, "document")
    if opened.status != 302 or "sessionid" not in client.cookies:
        raise SystemExit(f"the personal link answered HTTP {opened.status} without a session")
    if opened.headers["Location"] != "/p/":
        raise SystemExit(
            f"the personal link led to {opened.headers['Location']}, not the home page /p/"
        )
    home = client.fetch(urllib.parse.urljoin(base + link, opened.headers["Location"]), "document")
    page = PageParser()
    page.feed(home.body.decode())
    surveys = [u for u in page.anchors if re.fullmatch(r"/p/s/\d+/[-\w]+/", u)]
    if not surveys:
        raise SystemExit("the participant's home page links to no survey (none open now?)")
    survey_url = urllib.parse.urljoin(home.url, surveys[0])
    print(
        f"Personal link /p/<token> -> HTTP {opened.status} ({opened.wire:,} bytes) -> "
        f"{short(home.url)} ({home.wire:,} bytes on the wire; not counted) -> {survey_url}"
    )
    loads = []
    survey = client.fetch(survey_url, "document")
    for language in languages_offered(survey):
        language_switch(client, survey, language)
        pages = [client.fetch(survey_url, "document") for _ in range(repeat)]
        if any(p.status != 200 for p in pages):
            raise SystemExit(f"the survey page answered HTTP {pages[0].status}")
        survey = max(pages, key=lambda p: p.wire)
        loads.append((first_load(client, survey, language), [p.wire for p in pages]))
    return loads


def report(loads: list[tuple[Load, list[int]]]) -> None:
    for load, sizes in loads:
        print_load(load, sizes)
    print("\n| language | page HTML | CSS | JS | other | total on the wire | budget |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for load, _ in loads:
        html = load.rows[0][0].wire
        css = load.part({"style"})
        js = load.part({"script", "worker", "cached"})
        other = load.total - html - css - js
        verdict = "within" if load.total <= BUDGET else "**over**"
        print(
            f"| {load.language} | {html:,} | {css:,} | {js:,} | {other:,} | {load.total:,} "
            f"| {verdict} ({load.total / BUDGET:.0%} of {BUDGET:,}) |"
        )
    heaviest = max((load for load, _ in loads), key=lambda load: load.total)
    foreign = sorted({(u, by) for load, _ in loads for u, by in load.foreign})
    frameworks = sorted({(u, m) for load, _ in loads for u, m in load.frameworks})
    print(f"\nthird-party resources: {len(foreign)}")
    for url, by in foreign:
        print(f"  THIRD-PARTY: {url} (named by {by})")
    print(f"scripts that look like a JS framework: {len(frameworks)}")
    for url, marker in frameworks:
        print(f"  FRAMEWORK? {url}: {marker!r}")
    print(
        f"heaviest first load: {heaviest.total:,} bytes ({heaviest.language}), budget "
        f"{BUDGET:,} bytes: {'within budget' if heaviest.total <= BUDGET else 'OVER BUDGET'}"
    )
    if foreign or frameworks:
        sys.exit(2)
    if heaviest.total > BUDGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
