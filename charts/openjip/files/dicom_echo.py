"""`helm test`: a DICOM C-ECHO to the receiver; exit 0 only on status Success."""

import sys

from pynetdicom import AE

VERIFICATION = "1.2.840.10008.1.1"


def main(host: str, port: int, called_ae: str) -> int:
    ae = AE(ae_title="HELMTEST")
    ae.add_requested_context(VERIFICATION)
    association = ae.associate(host, port, ae_title=called_ae)
    if not association.is_established:
        print(f"no association with {called_ae}@{host}:{port}", file=sys.stderr)
        return 1
    status = association.send_c_echo()
    association.release()
    if status and status.Status == 0x0000:
        print(f"C-ECHO {called_ae}@{host}:{port}: Success")
        return 0
    print(f"C-ECHO {called_ae}@{host}:{port} failed: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
