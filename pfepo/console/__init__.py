"""The operator's web console at /ui: server-rendered HTML, inline SVG, htmx and server-sent events.

``mount(app, rt, tokens)`` adds it to the REST API's FastAPI app; ``GUARD_SELF_AUTH`` lists the console
routes the API guard lets through without a bearer header (login, logout, the read-only what-if, which
checks its own token). See docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
GUARD_SELF_AUTH = (("GET", "/ui/login"), ("POST", "/ui/login"), ("POST", "/ui/logout"),
                   ("POST", "/ui/whatif/run"))


def mount(app, rt, tokens) -> None:
    """Routes, static files and the session-cookie layer (outermost, so the API guard sees the token)."""
    import threading

    from starlette.staticfiles import StaticFiles

    from pfepo.console.routes import build_router
    from pfepo.console.session import CookieAuth, Sessions
    from pfepo.console.whatif import Jobs

    sessions = Sessions()
    app.state.console_sessions = sessions
    app.state.closing = threading.Event()  # set by ApiServer.stop: open event streams end at once
    app.add_middleware(CookieAuth, sessions=sessions, open_reads=rt.cfg.rest.open_reads)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")
    jobs = Jobs()
    app.state.whatif_jobs = jobs  # the daemon's pre-warm fills its cache (console.prewarm.start)
    app.include_router(build_router(rt, tokens, sessions, jobs))
