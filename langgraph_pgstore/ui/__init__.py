"""The web UI (extra ``api``): runs, one run's trace and timeline, a cost dashboard.

Server-rendered HTML (Jinja2 templates in ``templates/``, a stylesheet and a few lines of
JavaScript in ``static/``, charts as inline SVG), so it works offline and needs no build step.
It is mounted by the HTTP router, never on its own:

    app.include_router(create_router(db, auth=current_user, ui=True), prefix="/pgstore")
    # -> /pgstore/ui/ (runs), /pgstore/ui/runs/{id}, /pgstore/ui/dashboard

``langgraph-pgstore serve`` serves it at ``/ui/``. ``routes`` holds the pages, ``views`` the
layout and number formats they draw with.
"""
