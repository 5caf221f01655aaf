"""GET /api/health: is the portal up and can it reach the database?"""

from __future__ import annotations

import falcon
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker


class Health:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "database": "unreachable"}
            return
        resp.media = {"status": "ok", "database": "ok"}
