from __future__ import annotations

from alembic import context

import wayline.kernel.tables  # noqa: F401  (registers tables on the shared metadata)
import wayline.platform.governance.tables  # noqa: F401
import wayline.platform.tables  # noqa: F401
from wayline.kernel.store import make_engine, metadata

config = context.config


def run() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
