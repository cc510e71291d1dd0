"""REST API (FastAPI, served by uvicorn in a thread beside the os-ken hub)."""
