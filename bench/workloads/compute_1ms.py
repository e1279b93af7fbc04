from _common import efficiency
from _compute import make_cases, NOTES  # noqa: F401 (the harness prints NOTES)

NAME = "compute-1ms"
ABOUT = "compute-bound tasks of 1 ms (a calibrated busy loop): efficiency = serial / (workers x time)"
cases = make_cases(1000, 25, 200)
extra_fields = efficiency
