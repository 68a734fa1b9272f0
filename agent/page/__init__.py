"""The incident report page (HTML): :mod:`agent.page.render` for the page itself,
:mod:`agent.page.svg` for its inline evidence charts."""

from agent.page.render import (
    JobView,
    ListRow,
    PageLinks,
    analysis_page,
    encode_page,
    error_page,
    list_page,
    pending_page,
    standalone_page,
)

__all__ = [
    "JobView",
    "ListRow",
    "PageLinks",
    "analysis_page",
    "encode_page",
    "error_page",
    "list_page",
    "pending_page",
    "standalone_page",
]
