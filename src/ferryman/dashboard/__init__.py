"""The web dashboard: static pages and ES modules that call ``/api/v1``, plus login/logout.

No build step: ``static/`` holds the CSS, the JavaScript modules and the SVG charts' code
as they are served; ``templates/`` the two HTML pages. The server part is small: the asset
table (:mod:`.assets`), the session cookie and CSRF token (:mod:`.session`) and the routes
that serve pages and log in and out (:mod:`.pages`).
"""
