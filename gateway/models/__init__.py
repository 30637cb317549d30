"""All tables. Each area's models live in a module of their own; importing this
package registers every table on `Base.metadata` (Alembic and tests rely on it)."""

from gateway.db import Base  # noqa: F401
from gateway.models.activity import *  # noqa: F403
from gateway.models.audit import *  # noqa: F403
from gateway.models.campaigns import *  # noqa: F403
from gateway.models.clients import *  # noqa: F403
from gateway.models.connectors import *  # noqa: F403
from gateway.models.exchange import *  # noqa: F403
from gateway.models.graphql import *  # noqa: F403
from gateway.models.idempotency import *  # noqa: F403
from gateway.models.jobs import *  # noqa: F403
from gateway.models.ledger import *  # noqa: F403
from gateway.models.members import *  # noqa: F403
from gateway.models.outbox import *  # noqa: F403
from gateway.models.partners import *  # noqa: F403
from gateway.models.redemption import *  # noqa: F403
from gateway.models.settlement import *  # noqa: F403
from gateway.models.webhooks import *  # noqa: F403
