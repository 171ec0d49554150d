import statistics
import sys

print(statistics.median(map(float, open(sys.argv[1]).read().strip().split(","))))
