"""`helm test`: GET every URL given; exit 0 only when each answers 200.

An https URL is checked for an answer, not for its certificate: the site's own certificate is
often issued for its public name, not for the Service name the test pod uses.
"""

import ssl
import sys
import urllib.error
import urllib.request


def main(urls: list[str]) -> int:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    failed = 0
    for url in urls:
        context = unverified if url.startswith("https://") else None
        try:
            with urllib.request.urlopen(url, timeout=10, context=context) as response:
                print(f"{url}: {response.status}")
                failed += response.status != 200
        except (urllib.error.URLError, OSError) as error:
            print(f"{url}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
