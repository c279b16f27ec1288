"""``python -m openjip.receiver``: run the receiver with settings from the environment."""

import logging

from openjip.access.at_rest import protect_data_at_rest
from openjip.config import Settings
from openjip.receiver.service import ReceiverService

if __name__ == "__main__":
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    protect_data_at_rest(settings)
    ReceiverService(settings).serve_forever()
