"""`make demo`: the end-to-end run lands with the agent service (issue 6)."""

import sys


def main() -> int:
    print("crbroker demo: the end-to-end scan through the broker is not built yet (see issue 6).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
