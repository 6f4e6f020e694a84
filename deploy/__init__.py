"""How the API is served: gunicorn's config and worker class, loaded by gunicorn from the repository
root (the image's /app); not an installed package, and not imported by the application."""
