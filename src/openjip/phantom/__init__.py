"""Synthetic CT data: a chest phantom in Hounsfield units written as realistic DICOM series.

For tests, demos and benchmarks that need a multi-slice CT series (none ships with our test
data): body with subcutaneous fat, lungs with a nodule, heart, aorta, liver, spine and ribs.
"""

from openjip.phantom.anatomy import ChestAnatomy, Lesion
from openjip.phantom.ct import ct_anatomy, write_ct_series, write_ct_studies

__all__ = ["ChestAnatomy", "Lesion", "ct_anatomy", "write_ct_series", "write_ct_studies"]
