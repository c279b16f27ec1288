"""``python -m openjip.receiver``: run the receiver with settings from the environment."""

import logging

from openjip.config import Settings
from openjip.receiver.service import ReceiverService

if __name__ == "__main__":
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    ReceiverService(settings).serve_forever()
