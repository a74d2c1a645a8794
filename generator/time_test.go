package generator_test

import "time"

func testTime() time.Time { return time.Now().Add(-time.Hour) }
