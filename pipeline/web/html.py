"""HTML building blocks for the operator console: escaping by default, one page frame and
its one script.

Every value interpolated into markup goes through `fmt`, which escapes it unless it is
already `Safe` (markup built by these helpers). Templates are literals of this package;
nothing from a request, Redis or Kafka is ever used as a template. The page frame sends a
Content-Security-Policy whose script nonce is fresh per response, so even markup that
escaped by mistake could not run a script: the escaping and the policy each suffice alone.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterable

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:.6rem 1rem}header a{color:#fff}
main{padding:1rem;max-width:72rem}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.4rem 0;background:#fff}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f7}.bad{color:#a30000;font-weight:600}.ok{color:#0a6b2d;font-weight:600}
.trigger{background:#fff4d6}details summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-word;margin:.3rem 0;max-width:50rem}
form.inline{display:inline}label{margin-right:.6rem}input,select,button{font:inherit}
#result{font-weight:600}.muted{color:#555}
"""


PAGE_JS = """
var typedToken = null;
async function show(token) {
  var resp = await fetch(location.href, {headers: {"Authorization": "Bearer " + token}});
  if (resp.status === 401) { return false; }
  typedToken = token;
  // Scripts in the fetched markup never run: this one is the same on every page, so it
  // wires the new body itself.
  var fetched = new DOMParser().parseFromString(await resp.text(), "text/html");
  document.title = fetched.title;
  document.body.replaceWith(document.adoptNode(fetched.body));
  var field = document.getElementById("token");
  if (field) { field.value = token; }
  wire();
  return true;
}
async function reactivate(form) {
  var out = document.getElementById("result");
  var token = document.getElementById("token").value;
  out.textContent = "Sending...";
  var body = {tenant: form.dataset.tenant, scope: form.dataset.scope};
  if (form.dataset.list) { body.list_id = form.dataset.list; }
  try {
    var resp = await fetch(form.action, {method: "POST", body: JSON.stringify(body),
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}});
    var answer = await resp.json();
    if (resp.ok && answer.reactivated && await show(token)) {
      document.getElementById("result").textContent = "Reactivated.";
      return;
    }
    out.textContent = resp.ok ? "Not reactivated: " + (answer.detail || "")
      : "Refused (" + resp.status + " " + answer.error + "): " + answer.detail;
  } catch (err) { out.textContent = "Request failed: " + err; }
}
async function download(link) {
  var resp = await fetch(link.href, {headers: {"Authorization": "Bearer " + typedToken}});
  if (!resp.ok) { return; }
  var url = URL.createObjectURL(await resp.blob());
  var save = document.createElement("a");
  save.href = url;
  save.download = link.dataset.name;
  document.body.appendChild(save);
  save.click();
  save.remove();
}
function wire() {
  document.querySelectorAll("form.reactivate").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      reactivate(form);
    });
  });
  document.querySelectorAll("a.export").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (typedToken !== null) {  // unlocked off loopback: the download needs the header too
        event.preventDefault();
        download(link);
      }
    });
  });
  var unlock = document.getElementById("unlock");
  if (unlock) {
    unlock.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (!await show(document.getElementById("token").value)) {
        document.getElementById("result").textContent = "Wrong token.";
      }
    });
  }
}
wire();
"""
"""The one script of every console page: the reactivate buttons send the API's POST with the
token typed into the page as a header; a page refused for want of the token (off loopback)
fetches itself again with it, and its export links then download with it. After either, the
page's body is replaced by the fetched one (a reload would not carry the token)."""


class Safe(str):
    """Markup that is already escaped (built by this module's helpers)."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """`value` as HTML text: escaped (quotes too, so it is safe in an attribute), None as "";
    Safe markup passes unchanged."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, /, **values: object) -> Safe:
    """`template` (a literal of this package) formatted with every value escaped by `esc`."""
    return Safe(template.format(**{k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Safe:
    """The concatenation of `parts`, each escaped unless Safe."""
    return Safe(sep.join(esc(p) for p in parts))


def table(head: Iterable[str], rows: Iterable[Iterable[object]], caption: str = "") -> Safe:
    """A table with a header row; every cell escaped unless Safe. An empty table says so."""
    header = join(fmt('<th scope="col">{h}</th>', h=h) for h in head)
    body = join(fmt("<tr>{c}</tr>", c=join(fmt("<td>{v}</td>", v=v) for v in row)) for row in rows)
    if not body:
        return fmt('<p class="muted">{c}: none.</p>', c=caption or "Nothing")
    cap = fmt("<caption>{c}</caption>", c=caption) if caption else Safe("")
    return fmt(
        "<table>{cap}<thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>",
        cap=cap,
        h=header,
        b=body,
    )


def nonce() -> str:
    """A fresh script nonce for one response."""
    return secrets.token_urlsafe(16)


def csp(script_nonce: str) -> str:
    """The Content-Security-Policy of a console page: only our inline style and the one
    nonced script; fetches to our own origin only; no framing."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        f"script-src 'nonce-{script_nonce}'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def page(title: str, body: Safe, script_nonce: str, script: str = "") -> Safe:
    """A whole console page: `body` inside the frame, `script` (a literal of this package)
    as the one inline script, carrying `script_nonce`."""
    js = fmt('<script nonce="{n}">{s}</script>', n=script_nonce, s=Safe(script)) if script else ""
    return fmt(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>{t} · bounceguard</title><style>{css}</style></head><body>"
        '<header><a href="/ui/">bounceguard console</a></header><main>{b}</main>{js}</body></html>',
        t=title,
        css=Safe(CSS),
        b=body,
        js=Safe(js),
    )
