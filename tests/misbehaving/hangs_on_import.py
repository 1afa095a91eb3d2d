"""A backend module whose import never finishes (it waits for a device that never answers)."""

import time

while True:
    time.sleep(1)
