from _common import efficiency
from _compute import make_cases, NOTES  # noqa: F401 (the harness prints NOTES)

NAME = "compute-50us"
ABOUT = "compute-bound tasks of 50 us (a calibrated busy loop): efficiency = serial / (workers x time)"
cases = make_cases(50, 150, 4000)
extra_fields = efficiency
