"""HTML pages: one Jinja2 template each, with the page's message catalogue."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.i18n import LANGUAGES, choose_language, messages
from app.lessons import LESSONS
from app.runs.manager import get_run_manager, warm_up_runs
from app.settings import ROOT

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=ROOT / "templates")
templates.env.globals["LESSONS"] = LESSONS  # the lesson path, shown by the home page

# path → (template, catalogue name). Each page's catalogue lives in static/i18n/<lang>/<name>.json.
PAGES: dict[str, tuple[str, str]] = {
    "/": ("home.html", "home"),
    "/conv": ("conv.html", "conv"),
    "/pool": ("pool.html", "pool"),
    "/activations": ("activations.html", "activations"),
    "/loss": ("loss.html", "loss"),
    "/features": ("features.html", "features"),
    "/architectures": ("architectures.html", "architectures"),
    "/receptive-field": ("receptive_field.html", "receptive_field"),
    "/train": ("train.html", "train"),
    "/teach": ("teach.html", "teach"),
}


def render(request: Request, template: str, catalogue: str, **context) -> HTMLResponse:
    lang = choose_language(request)
    msgs = messages(lang, catalogue)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "languages": LANGUAGES,
            "messages": msgs,
            "page": catalogue,
            "pages": PAGES,
            "t": lambda key: msgs.get(key, key),
            **context,
        },
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="lax")
    return response


# pages whose visitor is about to start a training run: its warm-up begins as they are served
STARTS_RUNS = {"train", "teach"}


def _page_route(template: str, catalogue: str):
    def page(request: Request) -> HTMLResponse:
        if catalogue in STARTS_RUNS:
            warm_up_runs(request.app.dependency_overrides.get(get_run_manager))
        return render(request, template, catalogue)

    return page


for _path, (_template, _catalogue) in PAGES.items():
    router.add_api_route(
        _path,
        _page_route(_template, _catalogue),
        methods=["GET"],
        response_class=HTMLResponse,
        name=f"page:{_catalogue}",
    )


def not_found_page(request: Request) -> HTMLResponse:
    """404 for a page path: the site's frame and a way home, in the reader's language."""
    response = render(request, "not_found.html", "not_found", path=request.url.path)
    response.status_code = 404
    return response
