"""The HTTP API's OpenAPI 3.1 document and the routes that serve it: `/openapi.json`, and `/docs`,
a page made from it here, with no script and nothing fetched from elsewhere (it reads offline).

The document is openapi.json beside this module: the LangGraph Agent Server's, adapted to this
gateway's routes and answers (docs/openapi.md lists the differences). It is read once; each app
serves it less the operations it does not route (langgraph.json's `disable_*`)."""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

DOCUMENT = Path(__file__).with_name("openapi.json")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Marks a path that also takes a WebSocket, which OpenAPI does not describe.
WEBSOCKET = "x-websocket"
# Served whenever the document is: /metrics by the middleware around the app.
_ALWAYS = frozenset({("/ok", "get"), ("/openapi.json", "get"), ("/docs", "get"), ("/metrics", "get")})


@functools.cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(DOCUMENT.read_bytes())
    return loaded


def operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path, method) of each operation `routes` serve; method "websocket" for a WebSocket route."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            found.add((route.path, "websocket"))
        elif isinstance(route, Route):
            found.update((route.path, method.lower()) for method in route.methods or () if method != "HEAD")
    return found


def served(doc: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """`doc` less the operations that `routes` do not serve, and the paths left with none."""
    routed = operations(routes) | _ALWAYS
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        kept = {
            key: value
            for key, value in item.items()
            if (path, key) in routed
            or (key == WEBSOCKET and (path, "websocket") in routed)
            or (key not in METHODS and key != WEBSOCKET)
        }
        if any(key in METHODS or key == WEBSOCKET for key in kept):
            paths[path] = kept
    return {**doc, "paths": paths}


def routes(doc: dict[str, Any]) -> list[BaseRoute]:
    body = orjson.dumps(doc)
    page = render(doc)

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/openapi.json", openapi, methods=["GET"]), Route("/docs", docs, methods=["GET"])]


_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 2rem;color:#1d1d1f}
code,pre{font:13px/1.4 ui-monospace,monospace}pre{background:#f5f5f7;padding:.6rem;overflow:auto}
details{border:1px solid #d2d2d7;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}table{border-collapse:collapse;margin:.3rem 0}
td,th{border:1px solid #d2d2d7;padding:.2rem .5rem;text-align:left;vertical-align:top}
.m{display:inline-block;min-width:4.5rem;font-weight:600;text-transform:uppercase}
.get{color:#0a7d32}.post{color:#0b5fc1}.put,.patch{color:#a15c00}.delete{color:#c1121f}
.text{white-space:pre-line}
"""


def render(doc: dict[str, Any]) -> str:
    """The page of `/docs`: every operation by tag, then every schema, linked by anchors."""
    info = doc.get("info", {})
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {t["name"]: [] for t in doc.get("tags", [])}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                for tag in operation.get("tags") or ["Other"]:
                    by_tag.setdefault(tag, []).append((path, method, operation))
    descriptions = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(info.get('title', 'API'))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}</small></h1>",
        f'<p class="text">{_e(info.get("description", ""))}</p>',
        f'<p>The document: <a href="openapi.json">openapi.json</a> (OpenAPI {_e(doc.get("openapi", ""))}).</p><ul>',
    ]
    out += [f'<li><a href="#tag-{_a(tag)}">{_e(tag)}</a> ({len(ops)})</li>' for tag, ops in by_tag.items() if ops]
    out.append('<li><a href="#schemas">Schemas</a></li></ul>')
    for tag, ops in by_tag.items():
        if not ops:
            continue
        out.append(f'<h2 id="tag-{_a(tag)}">{_e(tag)}</h2><p class="text">{_e(descriptions.get(tag, ""))}</p>')
        for path, method, operation in ops:
            out.append(_operation(doc, path, method, operation))
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out.append(f'<details id="schema-{_a(name)}"><summary><code>{_e(name)}</code></summary>{_schema(schema)}')
        out.append("</details>")
    out.append("</body></html>")
    return "".join(out)


def _operation(doc: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> str:
    anchor = _a(operation.get("operationId") or f"{method}-{path}")
    out = [
        f'<details id="op-{anchor}"><summary><span class="m {method}">{method}</span> <code>{_e(path)}</code> ',
        f"{_e(operation.get('summary', ''))}</summary>",
        f'<p class="text">{_e(operation.get("description", ""))}</p>',
    ]
    websocket = doc["paths"][path].get(WEBSOCKET)
    if websocket and method == "post":
        out.append(f'<p class="text"><b>WebSocket</b>: {_e(websocket.get("description", ""))}</p>')
    parameters = operation.get("parameters") or []
    if parameters:
        out.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th>description</th></tr>")
        for param in parameters:
            required = " (required)" if param.get("required") else ""
            out.append(
                f"<tr><td><code>{_e(param.get('name', ''))}</code>{required}</td><td>{_e(param.get('in', ''))}</td>"
                f"<td>{_schema(param.get('schema', {}))}</td>"
                f'<td class="text">{_e(param.get("description", ""))}</td></tr>'
            )
        out.append("</table>")
    body = operation.get("requestBody")
    if body:
        out.append("<p><b>Request body</b>" + (" (required)" if body.get("required") else "") + "</p>")
        out += [f"<p><code>{_e(kind)}</code> {_schema(c.get('schema', {}))}</p>" for kind, c in body["content"].items()]
    out.append("<table><tr><th>status</th><th>description</th><th>body</th></tr>")
    for status, response in operation.get("responses", {}).items():
        if "$ref" in response:
            response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        content = "".join(
            f"<code>{_e(kind)}</code> {_schema(c.get('schema', {}))}" for kind, c in response.get("content", {}).items()
        )
        out.append(f"<tr><td>{_e(status)}</td><td>{_e(response.get('description', ''))}</td><td>{content}</td></tr>")
    out.append("</table></details>")
    return "".join(out)


def _schema(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        return f'<a href="#schema-{_a(name)}"><code>{_e(name)}</code></a>'
    if not schema:
        return "<code>any</code>"
    return f"<pre>{_e(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())}</pre>"


def _e(text: object) -> str:
    return html.escape(str(text))


def _a(name: str) -> str:
    """`name` as an HTML id and URL fragment: letters, digits, - and _ kept, the rest as -."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
