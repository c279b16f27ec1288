"""`helm test`: GET every URL given; exit 0 only when each answers 200."""

import sys
import urllib.error
import urllib.request


def main(urls: list[str]) -> int:
    failed = 0
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                print(f"{url}: {response.status}")
                failed += response.status != 200
        except (urllib.error.URLError, OSError) as error:
            print(f"{url}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
