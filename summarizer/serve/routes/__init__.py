"""The service's routers: one document (``summarise``), many (``jobs``), the process (``operations``), the page."""
