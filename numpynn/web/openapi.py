"""The API's description: the request body of POST /api/predict, which FastAPI cannot infer (the route reads the
body itself, in three formats), and /docs, the OpenAPI schema as one plain page with no script.
"""
from __future__ import annotations

from html import escape

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {
        "type": "string", "format": "binary", "description": "raw grey pixels, one byte each (0 black, 255 "
        "white), row by row: 784 bytes (28x28) or 78,400 (280x280); the model goes in the query string"}},
    "application/json": {"schema": {
        "type": "object", "required": ["pixels"], "additionalProperties": False,
        "properties": {
            "pixels": {"type": "array", "description": "28 rows of 28, or 280 rows of 280, numbers in [0, 1] "
                       "(0 black, 1 white; ink dark on light or light on dark)",
                       "items": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}},
            "model": {"type": "string", "description": "a name from GET /api/models (default: the first)"}}}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary",
                                 "description": "a picture of one digit: PNG, JPEG, BMP, GIF, TIFF, WebP"},
                       "model": {"type": "string"}}}}}}}


def api_page(schema: dict) -> str:
    """/docs: the routes of the OpenAPI schema as one plain page, with no script (Swagger UI would come from a
    CDN); /openapi.json has the whole schema, for tools."""
    rows = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            params = ", ".join(p["name"] for p in operation.get("parameters", []))
            body = ", ".join(operation.get("requestBody", {}).get("content", {}))
            rows.append(f"<tr><td><code>{method.upper()} {escape(path)}</code></td>"
                        f"<td>{escape(operation.get('summary', ''))}</td><td>{escape(params)}</td>"
                        f"<td>{escape(body)}</td></tr>")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>numpynn API</title>"
            f"<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><h1>numpynn API</h1>"
            f"<p>{escape(schema['info'].get('description', ''))} The whole schema: <a href=\"/openapi.json\">"
            f"/openapi.json</a>.</p><table class=\"epochs\"><thead><tr><th>route</th><th>what</th>"
            f"<th>query</th><th>body</th></tr></thead><tbody>{''.join(rows)}</tbody></table></main></body></html>")
