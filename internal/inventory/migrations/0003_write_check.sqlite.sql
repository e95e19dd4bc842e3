-- Nothing on SQLite: its stock writes run one statement at a time and
-- check the rows each touched in Go (see store_gorm.go, write).
SELECT 1;
