/*
 * db_sqlite.c: the SQLite implementation of db.h.
 *
 * One connection per thread (WAL lets readers run beside the one writer),
 * created on first use and kept in thread-local storage; each connection
 * prepares its statements once. Writers use BEGIN IMMEDIATE so that two
 * writers queue on the busy timeout instead of failing on lock upgrade.
 * Migrations are numbered SQL scripts applied at open, tracked by
 * PRAGMA user_version.
 */
#include "db/db_int.h"

#include "common/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---- */

/*
 * Numbered SQL scripts, each run in one transaction. A script that rebuilds
 * several tables is longer than the 4095 characters ISO C promises for a
 * string literal; gcc and clang take any length, and one script per schema
 * version reads better than a version split across literals.
 */
/* Migration 12's triggers: SQLite's clock in ms, and when a review queued now is due. */
#define GC_NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
#define GC_DUE "(" GC_NOW_MS " + (SELECT review_delay_ms FROM gc_setting WHERE id = 1))"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char *const migrations[] = {
    /* 1: registry core */
    "CREATE TABLE project("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  public INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE repository("
    "  id INTEGER PRIMARY KEY,"
    "  project_id INTEGER NOT NULL REFERENCES project(id),"
    "  name TEXT NOT NULL UNIQUE,"
    "  pull_count INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX repository_project ON repository(project_id);"
    "CREATE TABLE blob("
    "  digest TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE repo_blob("
    "  repo_id INTEGER NOT NULL REFERENCES repository(id) ON DELETE CASCADE,"
    "  digest TEXT NOT NULL REFERENCES blob(digest),"
    "  PRIMARY KEY(repo_id, digest)) WITHOUT ROWID;"
    "CREATE INDEX repo_blob_digest ON repo_blob(digest);"
    "CREATE TABLE artifact("
    "  id INTEGER PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repository(id) ON DELETE CASCADE,"
    "  digest TEXT NOT NULL,"
    "  media_type TEXT NOT NULL,"
    "  artifact_type TEXT,"
    "  size INTEGER NOT NULL,"
    "  subject TEXT,"
    "  annotations TEXT,"
    "  push_ms INTEGER NOT NULL,"
    "  pull_ms INTEGER,"
    "  UNIQUE(repo_id, digest));"
    "CREATE INDEX artifact_subject ON artifact(repo_id, subject) WHERE subject IS NOT NULL;"
    "CREATE TABLE artifact_blob("
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  digest TEXT NOT NULL,"
    "  PRIMARY KEY(artifact_id, digest)) WITHOUT ROWID;"
    "CREATE INDEX artifact_blob_digest ON artifact_blob(digest);"
    "CREATE TABLE artifact_child("
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  child_digest TEXT NOT NULL,"
    "  PRIMARY KEY(artifact_id, child_digest)) WITHOUT ROWID;"
    "CREATE TABLE tag("
    "  id INTEGER PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repository(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  push_ms INTEGER NOT NULL,"
    "  UNIQUE(repo_id, name));"
    "CREATE INDEX tag_artifact ON tag(artifact_id);"
    "CREATE TABLE upload("
    "  id TEXT PRIMARY KEY,"
    "  repo TEXT NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX upload_updated ON upload(updated_ms);"
    "INSERT INTO project(name, public, created_ms) VALUES('library', 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));",
    /* 2: access model — users, members, robots, audit log, project settings */
    "CREATE TABLE user("
    "  id INTEGER PRIMARY KEY,"
    "  username TEXT NOT NULL UNIQUE,"
    "  email TEXT NOT NULL DEFAULT '',"
    "  realname TEXT NOT NULL DEFAULT '',"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  password TEXT NOT NULL,"                 /* argon2id PHC string */
    "  sysadmin INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE member("
    "  id INTEGER PRIMARY KEY,"
    "  project_id INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL,"                  /* Harbor role ids 1..5 */
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE(project_id, user_id));"
    "CREATE INDEX member_user ON member(user_id);"
    "CREATE TABLE robot("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"              /* full name: robot$<name> or robot$<project>+<name> */
    "  description TEXT NOT NULL DEFAULT '',"
    "  level TEXT NOT NULL,"                    /* 'system' or 'project' */
    "  project_id INTEGER REFERENCES project(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL,"                   /* argon2id PHC string of the secret */
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  duration INTEGER NOT NULL DEFAULT -1,"   /* days, -1 = never expires */
    "  expires_at INTEGER NOT NULL DEFAULT -1," /* unix seconds, -1 = never */
    "  permissions TEXT NOT NULL DEFAULT '[]',"  /* Harbor's permissions JSON */
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE audit_log("
    "  id INTEGER PRIMARY KEY,"
    "  op_time_ms INTEGER NOT NULL,"
    "  username TEXT NOT NULL,"
    "  resource TEXT NOT NULL,"
    "  resource_type TEXT NOT NULL,"
    "  operation TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  result INTEGER NOT NULL,"                /* 1 success, 0 failure */
    "  project_id INTEGER,"
    "  client_ip TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX audit_time ON audit_log(op_time_ms);"
    "CREATE INDEX audit_project ON audit_log(project_id, op_time_ms);"
    "ALTER TABLE project ADD COLUMN owner_id INTEGER;"
    /* Harbor's metadata keys other than "public", which is the public column */
    "ALTER TABLE project ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE project ADD COLUMN cve_allowlist TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE project ADD COLUMN storage_limit INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE project ADD COLUMN updated_ms INTEGER;"
    "ALTER TABLE repository ADD COLUMN description TEXT NOT NULL DEFAULT '';"
    "UPDATE project SET updated_ms = created_ms;",
    /*
     * 3: ids are never reused, and every list has an index to walk.
     * SQLite gives a plain INTEGER PRIMARY KEY the largest id + 1, so the id
     * of the newest row came back after it was deleted: a new project met
     * the audit entries of a deleted one, a client holding an old id reached
     * another object. AUTOINCREMENT cannot be added in place: each table
     * whose ids the API shows is rebuilt with its rows and ids (foreign keys
     * are off during migrations, see migrate()). The project sequence starts
     * above the ids the audit log remembers, which covers the projects
     * deleted before this migration. artifact gains project_id (copied from
     * its repository, which never changes project) so that a project's
     * artifacts are listed in push order from an index; project.updated_ms
     * is always set. The indexes serve each list's filter and sort key.
     *
     * artifact.listed says whether the artifact is in Harbor's base
     * collection, what the lists and artifact_count show: tagged, or not a
     * child of an index of its repository. Triggers keep it true as tags and
     * index children come and go, so a list or a count reads one column of
     * an index instead of probing tags and children row by row;
     * artifact_child gains the repository of its index for them (and for the
     * check before a delete). A later migration that rebuilds artifact, tag
     * or artifact_child drops these triggers first and creates them again.
     */
    "CREATE TABLE new_project("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  public INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  owner_id INTEGER,"
    "  metadata TEXT NOT NULL DEFAULT '{}',"
    "  cve_allowlist TEXT NOT NULL DEFAULT '{}',"
    "  storage_limit INTEGER NOT NULL DEFAULT -1);"
    "INSERT INTO new_project(id, name, public, created_ms, updated_ms, owner_id, metadata,"
    "  cve_allowlist, storage_limit)"
    "  SELECT id, name, public, created_ms, coalesce(updated_ms, created_ms), owner_id, metadata,"
    "  cve_allowlist, storage_limit FROM project;"
    "DROP TABLE project;"
    "ALTER TABLE new_project RENAME TO project;"
    "CREATE INDEX project_created ON project(created_ms, name);"
    "CREATE INDEX project_updated ON project(updated_ms, name);"
    "CREATE TABLE new_repository("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  project_id INTEGER NOT NULL REFERENCES project(id),"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  pull_count INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "INSERT INTO new_repository(id, project_id, name, description, pull_count, created_ms,"
    "  updated_ms)"
    "  SELECT id, project_id, name, description, pull_count, created_ms, updated_ms"
    "  FROM repository;"
    "DROP TABLE repository;"
    "ALTER TABLE new_repository RENAME TO repository;"
    "CREATE INDEX repository_project ON repository(project_id);" /* and id: the rowid */
    "CREATE INDEX repository_project_name ON repository(project_id, name);"
    "CREATE INDEX repository_project_created ON repository(project_id, created_ms, name);"
    "CREATE INDEX repository_project_updated ON repository(project_id, updated_ms, name);"
    "CREATE INDEX repository_project_pulls ON repository(project_id, pull_count, name);"
    "CREATE INDEX repository_created ON repository(created_ms, name);"
    "CREATE INDEX repository_updated ON repository(updated_ms, name);"
    "CREATE INDEX repository_pulls ON repository(pull_count, name);"
    "CREATE TABLE new_artifact("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  repo_id INTEGER NOT NULL REFERENCES repository(id) ON DELETE CASCADE,"
    "  project_id INTEGER NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  media_type TEXT NOT NULL,"
    "  artifact_type TEXT,"
    "  size INTEGER NOT NULL,"
    "  subject TEXT,"
    "  annotations TEXT,"
    "  push_ms INTEGER NOT NULL,"
    "  pull_ms INTEGER,"
    "  listed INTEGER NOT NULL DEFAULT 1,"
    "  UNIQUE(repo_id, digest));"
    "INSERT INTO new_artifact(id, repo_id, project_id, digest, media_type, artifact_type, size,"
    "  subject, annotations, push_ms, pull_ms)"
    "  SELECT a.id, a.repo_id, r.project_id, a.digest, a.media_type, a.artifact_type, a.size,"
    "  a.subject, a.annotations, a.push_ms, a.pull_ms"
    "  FROM artifact a JOIN repository r ON r.id = a.repo_id;"
    "DROP TABLE artifact;"
    "ALTER TABLE new_artifact RENAME TO artifact;"
    "CREATE INDEX artifact_subject ON artifact(repo_id, subject) WHERE subject IS NOT NULL;"
    "CREATE INDEX artifact_repo ON artifact(repo_id);" /* and id: the rowid */
    "CREATE INDEX artifact_repo_push ON artifact(repo_id, push_ms);"
    "CREATE INDEX artifact_repo_pull ON artifact(repo_id, pull_ms);"
    "CREATE INDEX artifact_repo_size ON artifact(repo_id, size);"
    "CREATE INDEX artifact_project ON artifact(project_id);"
    "CREATE INDEX artifact_project_push ON artifact(project_id, push_ms);"
    "CREATE INDEX artifact_project_pull ON artifact(project_id, pull_ms);"
    "CREATE INDEX artifact_project_size ON artifact(project_id, size);"
    "CREATE INDEX artifact_repo_listed ON artifact(repo_id, listed);"
    "CREATE INDEX artifact_project_listed ON artifact(project_id, listed);"
    "CREATE TABLE new_artifact_child("
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  child_digest TEXT NOT NULL,"
    "  repo_id INTEGER NOT NULL,"
    "  PRIMARY KEY(artifact_id, child_digest)) WITHOUT ROWID;"
    "INSERT INTO new_artifact_child(artifact_id, child_digest, repo_id)"
    "  SELECT c.artifact_id, c.child_digest, a.repo_id"
    "  FROM artifact_child c JOIN artifact a ON a.id = c.artifact_id;"
    "DROP TABLE artifact_child;"
    "ALTER TABLE new_artifact_child RENAME TO artifact_child;"
    "CREATE INDEX artifact_child_repo ON artifact_child(repo_id, child_digest);"
    "CREATE TABLE new_tag("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  repo_id INTEGER NOT NULL REFERENCES repository(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  push_ms INTEGER NOT NULL,"
    "  UNIQUE(repo_id, name));"
    "INSERT INTO new_tag(id, repo_id, name, artifact_id, push_ms)"
    "  SELECT id, repo_id, name, artifact_id, push_ms FROM tag;"
    "DROP TABLE tag;"
    "ALTER TABLE new_tag RENAME TO tag;"
    "CREATE INDEX tag_artifact ON tag(artifact_id, push_ms);"
    "UPDATE artifact SET listed = 0 WHERE NOT EXISTS (SELECT 1 FROM tag t"
    "  WHERE t.artifact_id = artifact.id) AND EXISTS (SELECT 1 FROM artifact_child c"
    "  WHERE c.repo_id = artifact.repo_id AND c.child_digest = artifact.digest);"
    "CREATE TRIGGER artifact_listed_new AFTER INSERT ON artifact BEGIN"
    "  UPDATE artifact SET listed = 0 WHERE id = NEW.id AND EXISTS (SELECT 1 FROM artifact_child c"
    "    WHERE c.repo_id = NEW.repo_id AND c.child_digest = NEW.digest);"
    " END;"
    "CREATE TRIGGER artifact_listed_child_added AFTER INSERT ON artifact_child BEGIN"
    "  UPDATE artifact SET listed = 0 WHERE repo_id = NEW.repo_id AND digest = NEW.child_digest"
    "    AND listed = 1 AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = artifact.id);"
    " END;"
    "CREATE TRIGGER artifact_listed_child_removed AFTER DELETE ON artifact_child BEGIN"
    "  UPDATE artifact SET listed = 1 WHERE repo_id = OLD.repo_id AND digest = OLD.child_digest"
    "    AND listed = 0 AND NOT EXISTS (SELECT 1 FROM artifact_child c"
    "    WHERE c.repo_id = OLD.repo_id AND c.child_digest = OLD.child_digest);"
    " END;"
    "CREATE TRIGGER artifact_listed_tag_added AFTER INSERT ON tag BEGIN"
    "  UPDATE artifact SET listed = 1 WHERE id = NEW.artifact_id AND listed = 0;"
    " END;"
    "CREATE TRIGGER artifact_listed_tag_moved AFTER UPDATE OF artifact_id ON tag"
    "  WHEN OLD.artifact_id <> NEW.artifact_id BEGIN"
    "  UPDATE artifact SET listed = 1 WHERE id = NEW.artifact_id AND listed = 0;"
    "  UPDATE artifact SET listed = 0 WHERE id = OLD.artifact_id AND listed = 1"
    "    AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = OLD.artifact_id)"
    "    AND EXISTS (SELECT 1 FROM artifact_child c WHERE c.repo_id = artifact.repo_id"
    "    AND c.child_digest = artifact.digest);"
    " END;"
    "CREATE TRIGGER artifact_listed_tag_removed AFTER DELETE ON tag BEGIN"
    "  UPDATE artifact SET listed = 0 WHERE id = OLD.artifact_id AND listed = 1"
    "    AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = OLD.artifact_id)"
    "    AND EXISTS (SELECT 1 FROM artifact_child c WHERE c.repo_id = artifact.repo_id"
    "    AND c.child_digest = artifact.digest);"
    " END;"
    "CREATE TABLE new_user("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  username TEXT NOT NULL UNIQUE,"
    "  email TEXT NOT NULL DEFAULT '',"
    "  realname TEXT NOT NULL DEFAULT '',"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  password TEXT NOT NULL,"
    "  sysadmin INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "INSERT INTO new_user(id, username, email, realname, comment, password, sysadmin,"
    "  created_ms, updated_ms)"
    "  SELECT id, username, email, realname, comment, password, sysadmin, created_ms, updated_ms"
    "  FROM user;"
    "DROP TABLE user;"
    "ALTER TABLE new_user RENAME TO user;"
    "CREATE TABLE new_member("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  project_id INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE(project_id, user_id));"
    "INSERT INTO new_member(id, project_id, user_id, role, created_ms, updated_ms)"
    "  SELECT id, project_id, user_id, role, created_ms, updated_ms FROM member;"
    "DROP TABLE member;"
    "ALTER TABLE new_member RENAME TO member;"
    "CREATE INDEX member_user ON member(user_id);"
    "CREATE TABLE new_robot("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  level TEXT NOT NULL,"
    "  project_id INTEGER REFERENCES project(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  duration INTEGER NOT NULL DEFAULT -1,"
    "  expires_at INTEGER NOT NULL DEFAULT -1,"
    "  permissions TEXT NOT NULL DEFAULT '[]',"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "INSERT INTO new_robot(id, name, description, level, project_id, secret, disabled, duration,"
    "  expires_at, permissions, created_ms, updated_ms)"
    "  SELECT id, name, description, level, project_id, secret, disabled, duration, expires_at,"
    "  permissions, created_ms, updated_ms FROM robot;"
    "DROP TABLE robot;"
    "ALTER TABLE new_robot RENAME TO robot;"
    "INSERT INTO sqlite_sequence(name, seq) SELECT 'project', 0"
    "  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'project');"
    "UPDATE sqlite_sequence SET seq = max(seq,"
    "  (SELECT coalesce(max(project_id), 0) FROM audit_log)) WHERE name = 'project';",
    /*
     * 4: folded audit rows — repeated pulls and failed logins of one minute
     * share a row with a count (bucket = the minute; NULL for other rows).
     */
    "ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE audit_log ADD COLUMN bucket INTEGER;"
    "CREATE UNIQUE INDEX audit_fold ON audit_log(bucket, username, resource, resource_type,"
    " operation, result, client_ip, project_id) WHERE bucket IS NOT NULL;",
    /* 5: labels (db_label.c), global (project_id NULL) or of one project, and
     * which artifacts carry them. Ids are never reused (AUTOINCREMENT). */
    "CREATE TABLE label("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  color TEXT NOT NULL DEFAULT '',"
    "  scope TEXT NOT NULL,"                    /* 'g' global, 'p' project */
    "  project_id INTEGER REFERENCES project(id) ON DELETE CASCADE,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX label_name ON label(scope, coalesce(project_id, 0), name);"
    "CREATE INDEX label_project ON label(project_id) WHERE project_id IS NOT NULL;"
    "CREATE TABLE artifact_label("
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  label_id INTEGER NOT NULL REFERENCES label(id) ON DELETE CASCADE,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(artifact_id, label_id)) WITHOUT ROWID;"
    "CREATE INDEX artifact_label_label ON artifact_label(label_id);",
    /*
     * 6: who opened an upload session and in which project, so that open
     * sessions are capped per user and per project (rows from before have
     * neither and count towards the total only).
     */
    "ALTER TABLE upload ADD COLUMN project_id INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE upload ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX upload_owner ON upload(owner);"
    "CREATE INDEX upload_project ON upload(project_id);",
    /*
     * 7: the scan job queue and its results (db_scan.c): one row per
     * artifact, its latest scan. status is Pending, Running, Success, Error
     * or Stopped; a Running row found at start-up was cut off by a crash and
     * goes back to Pending. summary is the overview's summary JSON, report
     * the full vulnerability report JSON (both NULL until a Success).
     */
    "CREATE TABLE scan_job("
    "  artifact_id INTEGER PRIMARY KEY REFERENCES artifact(id) ON DELETE CASCADE,"
    "  report_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  queued_ms INTEGER NOT NULL,"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  severity TEXT NOT NULL DEFAULT '',"
    "  summary TEXT,"
    "  report TEXT,"
    "  log TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX scan_job_pending ON scan_job(queued_ms) WHERE status = 'Pending';",
    /*
     * 8: system-wide settings by name (db_gate.c), for now the system CVE
     * allowlist ("cve_allowlist", JSON text as a project's).
     */
    "CREATE TABLE setting("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_ms INTEGER NOT NULL);",
    /*
     * 9: what re-matching and the security hub read (db_finding.c). Each
     * successful scan keeps the image's merged package inventory (stored once
     * per distinct content, shared by the artifacts that have it, dropped with
     * the last of them), the counts of its findings per severity and a hash of
     * them (fingerprint), and one finding row per vulnerability x package;
     * the texts of a CVE are kept once in finding_text. vuln_change records
     * what a re-match after a database update changed.
     */
    "CREATE TABLE scan_inventory("
    "  id INTEGER PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"               /* sha256 hex of body */
    "  body BLOB NOT NULL);"                     /* the inventory JSON */
    "ALTER TABLE scan_job ADD COLUMN inventory_id INTEGER;"
    "ALTER TABLE scan_job ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE scan_job ADD COLUMN critical_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN high_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN medium_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN low_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN none_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN unknown_cnt INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE scan_job ADD COLUMN fixable_cnt INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX scan_job_inventory ON scan_job(inventory_id) WHERE inventory_id IS NOT NULL;"
    /* covers the hub's sums: the counts sit after the report in the row (added later), so
     * reading them from the table would walk every report's overflow pages */
    "CREATE INDEX scan_job_danger ON scan_job(critical_cnt DESC, high_cnt DESC, medium_cnt DESC,"
    "  low_cnt DESC, none_cnt, unknown_cnt, fixable_cnt) WHERE report IS NOT NULL;"
    "CREATE TRIGGER scan_inventory_drop AFTER DELETE ON scan_job"
    "  WHEN OLD.inventory_id IS NOT NULL BEGIN"
    "  DELETE FROM scan_inventory WHERE id = OLD.inventory_id AND NOT EXISTS"
    "    (SELECT 1 FROM scan_job WHERE inventory_id = OLD.inventory_id);"
    " END;"
    "CREATE TRIGGER scan_inventory_moved AFTER UPDATE OF inventory_id ON scan_job"
    "  WHEN OLD.inventory_id IS NOT NULL AND OLD.inventory_id IS NOT NEW.inventory_id BEGIN"
    "  DELETE FROM scan_inventory WHERE id = OLD.inventory_id AND NOT EXISTS"
    "    (SELECT 1 FROM scan_job WHERE inventory_id = OLD.inventory_id);"
    " END;"
    "CREATE TABLE finding("
    "  id INTEGER PRIMARY KEY,"
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  project_id INTEGER NOT NULL,"
    "  repo_id INTEGER NOT NULL,"
    "  cve_id TEXT NOT NULL,"
    "  package TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  fixed_version TEXT NOT NULL DEFAULT '',"
    "  severity INTEGER NOT NULL,"               /* 0 Unknown, 1 Negligible .. 5 Critical */
    "  cvss3 REAL);"                             /* NULL when unknown */
    "CREATE INDEX finding_artifact ON finding(artifact_id);"
    "CREATE INDEX finding_cvss ON finding(cvss3 DESC);"
    "CREATE INDEX finding_cve ON finding(cve_id, cvss3 DESC);"
    "CREATE INDEX finding_package ON finding(package, cvss3 DESC);"
    "CREATE INDEX finding_severity ON finding(severity, cvss3 DESC);"
    "CREATE INDEX finding_project ON finding(project_id, cvss3 DESC);"
    "CREATE INDEX finding_repo ON finding(repo_id, cvss3 DESC);"
    /* one row per CVE x package x version found anywhere, with how many finding rows have
     * it: the security hub's most dangerous CVEs without walking duplicates */
    "CREATE TABLE finding_vuln("
    "  cve_id TEXT NOT NULL,"
    "  package TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  severity INTEGER NOT NULL,"
    "  cvss3 REAL,"
    "  n INTEGER NOT NULL,"
    "  PRIMARY KEY(cve_id, package, version)) WITHOUT ROWID;"
    "CREATE INDEX finding_vuln_cvss ON finding_vuln(cvss3 DESC);"
    "CREATE TRIGGER finding_vuln_add AFTER INSERT ON finding BEGIN"
    "  INSERT INTO finding_vuln(cve_id, package, version, severity, cvss3, n)"
    "    VALUES(NEW.cve_id, NEW.package, NEW.version, NEW.severity, NEW.cvss3, 1)"
    "    ON CONFLICT(cve_id, package, version) DO UPDATE SET n = n + 1,"
    "    severity = excluded.severity, cvss3 = excluded.cvss3;"
    " END;"
    "CREATE TRIGGER finding_vuln_drop AFTER DELETE ON finding BEGIN"
    "  UPDATE finding_vuln SET n = n - 1 WHERE cve_id = OLD.cve_id AND package = OLD.package"
    "    AND version = OLD.version;"
    "  DELETE FROM finding_vuln WHERE cve_id = OLD.cve_id AND package = OLD.package"
    "    AND version = OLD.version AND n <= 0;"
    " END;"
    "CREATE TRIGGER finding_vuln_rated AFTER UPDATE OF severity, cvss3 ON finding BEGIN"
    "  UPDATE finding_vuln SET severity = NEW.severity, cvss3 = NEW.cvss3"
    "    WHERE cve_id = NEW.cve_id AND package = NEW.package AND version = NEW.version;"
    " END;"
    "CREATE TABLE finding_text("
    "  cve_id TEXT PRIMARY KEY,"
    "  description TEXT NOT NULL,"
    "  links TEXT NOT NULL,"                     /* JSON array */
    "  cvss3_vector TEXT NOT NULL DEFAULT '',"
    "  cwe_ids TEXT NOT NULL DEFAULT '[]');"     /* JSON array */
    "CREATE INDEX tag_name ON tag(name);"
    "CREATE TABLE vuln_change("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time_ms INTEGER NOT NULL,"
    "  artifact_id INTEGER NOT NULL REFERENCES artifact(id) ON DELETE CASCADE,"
    "  project_id INTEGER NOT NULL,"
    "  added TEXT NOT NULL,"                     /* JSON arrays of CVE ids */
    "  removed TEXT NOT NULL);"
    "CREATE INDEX vuln_change_time ON vuln_change(time_ms);"
    "CREATE INDEX vuln_change_project ON vuln_change(project_id, time_ms);"
    "CREATE INDEX vuln_change_artifact ON vuln_change(artifact_id);"
    "CREATE TABLE cve_export("                    /* Harbor's CVE export jobs */
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL,"
    "  username TEXT NOT NULL,"
    "  job_name TEXT NOT NULL DEFAULT '',"
    "  project_id INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,"
    "  repositories TEXT NOT NULL DEFAULT '',"
    "  tags TEXT NOT NULL DEFAULT '',"
    "  cve_ids TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL,"
    "  status_text TEXT NOT NULL DEFAULT '',"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  csv BLOB);"
    "CREATE INDEX cve_export_user ON cve_export(username);"
    "CREATE INDEX cve_export_pending ON cve_export(id) WHERE status = 'Pending';",
    /*
     * 10: external scanners (db_scanner.c): registrations of adapters of the
     * pluggable scanner API, the scanner a project chose (no row: the
     * default), and which scanner produced a scan's report (JSON
     * {"name","vendor","version"}; '' for the built-in one); the running jobs
     * by report id (the tokens of external scanners are checked against them).
     */
    "CREATE TABLE scanner_registration("
    "  uuid TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  url TEXT NOT NULL UNIQUE,"
    "  auth TEXT NOT NULL DEFAULT '',"
    "  access_credential TEXT NOT NULL DEFAULT '',"
    "  skip_cert_verify INTEGER NOT NULL DEFAULT 0,"
    "  use_internal_addr INTEGER NOT NULL DEFAULT 0,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  is_default INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE project_scanner("
    "  project_id INTEGER PRIMARY KEY REFERENCES project(id) ON DELETE CASCADE,"
    "  uuid TEXT NOT NULL);"
    "ALTER TABLE scan_job ADD COLUMN scanner TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX scan_job_running ON scan_job(report_id) WHERE status = 'Running';",
    /*
     * 11: scan-all runs (db_scanall.c) and audit entries of scans. A run
     * queues the artifacts with ids up to last_id, cursor marks how far it
     * got; its counts are frozen into it when it ends. scan_job.run_id is
     * the run that queued the job, operator who asked for it ('' = wharf
     * itself: scan on push, a schedule). The trigger writes one audit entry
     * (operation "scan") when a scan ends, in the statement that ends it: a
     * Success, an Error, or a Stopped scan that was running or was asked
     * for on its own (the queued scans of a stopped scan-all are not
     * listed one by one).
     */
    "CREATE TABLE scan_run("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  trigger_type TEXT NOT NULL,"             /* 'Manual' or 'Schedule' */
    "  operator TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL,"                   /* Running, Success, Error, Stopped */
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  cursor INTEGER NOT NULL DEFAULT 0,"
    "  last_id INTEGER NOT NULL,"
    "  pending INTEGER NOT NULL DEFAULT 0,"
    "  running INTEGER NOT NULL DEFAULT 0,"
    "  success INTEGER NOT NULL DEFAULT 0,"
    "  error INTEGER NOT NULL DEFAULT 0,"
    "  stopped INTEGER NOT NULL DEFAULT 0);"
    "ALTER TABLE scan_job ADD COLUMN run_id INTEGER;"
    "ALTER TABLE scan_job ADD COLUMN operator TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX scan_job_run ON scan_job(run_id, status) WHERE run_id IS NOT NULL;"
    "CREATE TRIGGER scan_job_audit AFTER UPDATE OF status ON scan_job"
    " WHEN NEW.status IN ('Success', 'Error', 'Stopped') AND OLD.status IN ('Pending', 'Running')"
    "  AND (NEW.status <> 'Stopped' OR OLD.status = 'Running' OR NEW.run_id IS NULL)"
    " BEGIN"
    "  INSERT INTO audit_log(op_time_ms, username, resource, resource_type, operation,"
    "   description, result, project_id)"
    "  SELECT CASE WHEN NEW.end_ms > 0 THEN NEW.end_ms"
    "   ELSE CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END,"
    "   CASE WHEN NEW.operator = '' THEN 'system' ELSE NEW.operator END,"
    "   r.name || '@' || a.digest, 'artifact', 'scan',"
    "   CASE NEW.status WHEN 'Success' THEN 'scan finished, severity '"
    "    || CASE WHEN NEW.severity = '' THEN 'None' ELSE NEW.severity END"
    "   WHEN 'Error' THEN 'scan failed: ' || substr(NEW.log, 1, 200) ELSE 'scan stopped' END"
    "   || CASE WHEN NEW.run_id IS NULL THEN '' ELSE ' (scan all ' || NEW.run_id || ')' END,"
    "   NEW.status = 'Success', r.project_id"
    "  FROM artifact a JOIN repository r ON r.id = a.repo_id WHERE a.id = NEW.artifact_id;"
    " END;",
    /*
     * 12: online garbage collection (db_gc.c). Reference tracking is done by
     * the triggers below, next to every write that can make a blob or a
     * manifest unreferenced (or a new one appear): each queues the digest or
     * artifact for review at now + gc_setting.review_delay_ms. Every enqueue
     * is an upsert that postpones the review, never an insert that ignores a
     * conflict, so an enqueue racing a reviewer is never lost. The queues
     * are consumed by the collector (gc/), one due row per short write
     * transaction. "Now" in a trigger is SQLite's clock in ms (NOW_MS); a
     * PostgreSQL port writes the same triggers in PL/pgSQL with
     * clock_timestamp(). gc_manifest_review rows outlive their artifacts
     * (no foreign key): a review of a gone artifact drops the row. The
     * artifact(digest) index answers "does any manifest use this digest".
     * gc_run keeps the history of collections and audit-log purges. What
     * exists when this migration runs is queued once, a day from now.
     */
    "CREATE TABLE gc_setting("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  review_delay_ms INTEGER NOT NULL);"
    "INSERT INTO gc_setting(id, review_delay_ms) VALUES(1, 86400000);"
    "CREATE TABLE gc_blob_review("
    "  digest TEXT PRIMARY KEY,"
    "  review_after_ms INTEGER NOT NULL,"
    "  review_count INTEGER NOT NULL DEFAULT 0,"
    "  event TEXT NOT NULL);"
    "CREATE INDEX gc_blob_review_due ON gc_blob_review(review_after_ms);"
    "CREATE TABLE gc_manifest_review("
    "  artifact_id INTEGER PRIMARY KEY,"
    "  review_after_ms INTEGER NOT NULL,"
    "  review_count INTEGER NOT NULL DEFAULT 0,"
    "  event TEXT NOT NULL);"
    "CREATE INDEX gc_manifest_review_due ON gc_manifest_review(review_after_ms);"
    "CREATE INDEX gc_manifest_review_event ON gc_manifest_review(event, review_after_ms);"
    "CREATE INDEX artifact_digest ON artifact(digest);"
    "CREATE TABLE gc_run("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL,"                     /* 'gc' or 'purgeaudit' */
    "  trigger_type TEXT NOT NULL,"             /* 'Manual', 'Schedule' or 'CLI' */
    "  operator TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL,"                   /* Pending, Running, Success, Error, Stopped */
    "  params TEXT NOT NULL DEFAULT '{}',"      /* the run's parameters (JSON text) */
    "  created_ms INTEGER NOT NULL,"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  updated_ms INTEGER NOT NULL,"
    "  stop_requested INTEGER NOT NULL DEFAULT 0,"
    "  blobs INTEGER NOT NULL DEFAULT 0,"        /* blobs deleted (dry run: would be) */
    "  bytes INTEGER NOT NULL DEFAULT 0,"        /* their bytes */
    "  artifacts INTEGER NOT NULL DEFAULT 0,"    /* manifests deleted (delete_untagged) */
    "  purged INTEGER NOT NULL DEFAULT 0,"       /* audit rows purged */
    "  failures INTEGER NOT NULL DEFAULT 0,"     /* reviews that failed (retried later) */
    "  log TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX gc_run_kind ON gc_run(kind, id);"
    "CREATE TRIGGER gc_blob_added AFTER INSERT ON blob BEGIN"
    "  INSERT INTO gc_blob_review(digest, review_after_ms, event)"
    "   VALUES(NEW.digest, " GC_DUE ", 'blob_upload')"
    "   ON CONFLICT(digest) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_blob_unlinked AFTER DELETE ON repo_blob BEGIN"
    "  INSERT INTO gc_blob_review(digest, review_after_ms, event)"
    "   VALUES(OLD.digest, " GC_DUE ", 'blob_unlink')"
    "   ON CONFLICT(digest) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_layer_dropped AFTER DELETE ON artifact_blob BEGIN"
    "  INSERT INTO gc_blob_review(digest, review_after_ms, event)"
    "   VALUES(OLD.digest, " GC_DUE ", 'layer_delete')"
    "   ON CONFLICT(digest) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_artifact_added AFTER INSERT ON artifact BEGIN"
    "  INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "   VALUES(NEW.id, " GC_DUE ", 'manifest_upload')"
    "   ON CONFLICT(artifact_id) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_artifact_dropped AFTER DELETE ON artifact BEGIN"
    "  INSERT INTO gc_blob_review(digest, review_after_ms, event)"
    "   VALUES(OLD.digest, " GC_DUE ", 'manifest_delete')"
    "   ON CONFLICT(digest) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    "  INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "   SELECT a.id, " GC_DUE ", 'subject_delete' FROM artifact a"
    "   WHERE a.repo_id = OLD.repo_id AND a.subject = OLD.digest"
    "   ON CONFLICT(artifact_id) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_child_dropped AFTER DELETE ON artifact_child BEGIN"
    "  INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "   SELECT a.id, " GC_DUE ", 'parent_delete' FROM artifact a"
    "   WHERE a.repo_id = OLD.repo_id AND a.digest = OLD.child_digest"
    "   ON CONFLICT(artifact_id) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_tag_dropped AFTER DELETE ON tag BEGIN"
    "  INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "   VALUES(OLD.artifact_id, " GC_DUE ", 'tag_delete')"
    "   ON CONFLICT(artifact_id) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "CREATE TRIGGER gc_tag_switched AFTER UPDATE OF artifact_id ON tag"
    "  WHEN OLD.artifact_id <> NEW.artifact_id BEGIN"
    "  INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "   VALUES(OLD.artifact_id, " GC_DUE ", 'tag_switch')"
    "   ON CONFLICT(artifact_id) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
    "   event = excluded.event;"
    " END;"
    "INSERT INTO gc_blob_review(digest, review_after_ms, event)"
    "  SELECT b.digest, " GC_DUE ", 'migration' FROM blob b"
    "  WHERE NOT EXISTS (SELECT 1 FROM artifact a WHERE a.digest = b.digest)"
    "  AND NOT EXISTS (SELECT 1 FROM artifact_blob ab WHERE ab.digest = b.digest)"
    "  ORDER BY b.digest;"
    "INSERT INTO gc_manifest_review(artifact_id, review_after_ms, event)"
    "  SELECT a.id, " GC_DUE ", 'migration' FROM artifact a"
    "  WHERE NOT EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = a.id) ORDER BY a.id;",
};
#pragma GCC diagnostic pop

/* ---- statements ---- */

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_PROJECT_INSERT,
    S_PROJECT_GET,
    S_PROJECT_ALL,
    S_REPO_GET,
    S_REPO_TOUCH_NAME,
    S_REPO_INSERT,
    S_REPO_LIST,
    S_BLOB_INSERT,
    S_REPO_BLOB_INSERT,
    S_BLOB_GET,
    S_BLOB_UNLINK,
    S_REPO_BLOB_HAS,
    S_ARTIFACT_HAS,
    S_ARTIFACT_REPUSH,
    S_ARTIFACT_INSERT,
    S_ARTIFACT_BLOB_INSERT,
    S_ARTIFACT_CHILD_INSERT,
    S_TAG_MOVE,
    S_TAG_INSERT,
    S_MANIFEST_BY_TAG,
    S_MANIFEST_BY_DIGEST,
    S_ARTIFACT_DELETE,
    S_TAG_DELETE,
    S_TAG_LIST,
    S_REFERRERS,
    S_REFERRERS_TYPE,
    S_PULL_ARTIFACT,
    S_PULL_REPO,
    S_UPLOAD_INSERT,
    S_UPLOAD_GET,
    S_UPLOAD_TOUCH,
    S_UPLOAD_DELETE,
    S_UPLOAD_COUNT,
    S_UPLOAD_EXPIRED,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT inner",
    [S_RELEASE] = "RELEASE inner",
    [S_ROLLBACK_TO] = "ROLLBACK TO inner",
    [S_PROJECT_INSERT] = "INSERT INTO project(name, public, created_ms, updated_ms)"
                         " VALUES(?1, ?2, ?3, ?3)",
    [S_PROJECT_GET] = "SELECT id, name, public, created_ms FROM project WHERE name = ?1",
    [S_PROJECT_ALL] = "SELECT id, name, public, created_ms FROM project ORDER BY name",
    [S_REPO_GET] = "SELECT id, project_id, name FROM repository WHERE name = ?1",
    /* Existing rows are updated, not upserted: an upsert that meets its conflict still
     * takes a number from an AUTOINCREMENT sequence, and ids would run ahead. */
    [S_REPO_TOUCH_NAME] = "UPDATE repository SET updated_ms = ?2 WHERE name = ?1 RETURNING id",
    [S_REPO_INSERT] = "INSERT INTO repository(project_id, name, created_ms, updated_ms)"
                      " VALUES(?1, ?2, ?3, ?3) RETURNING id",
    [S_REPO_LIST] = "SELECT name FROM repository WHERE name > ?1 ORDER BY name LIMIT ?2",
    [S_BLOB_INSERT] = "INSERT INTO blob(digest, size, created_ms) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(digest) DO NOTHING",
    [S_REPO_BLOB_INSERT] = "INSERT INTO repo_blob(repo_id, digest) VALUES(?1, ?2)"
                           " ON CONFLICT DO NOTHING",
    [S_BLOB_GET] = "SELECT b.size FROM repository r JOIN repo_blob rb ON rb.repo_id = r.id"
                   " JOIN blob b ON b.digest = rb.digest WHERE r.name = ?1 AND rb.digest = ?2",
    [S_BLOB_UNLINK] = "DELETE FROM repo_blob WHERE digest = ?2"
                      " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_REPO_BLOB_HAS] = "SELECT 1 FROM repo_blob WHERE repo_id = ?1 AND digest = ?2",
    [S_ARTIFACT_HAS] = "SELECT 1 FROM artifact WHERE repo_id = ?1 AND digest = ?2",
    [S_ARTIFACT_REPUSH] = "UPDATE artifact SET push_ms = ?3 WHERE repo_id = ?1 AND digest = ?2"
                          " RETURNING id",
    [S_ARTIFACT_INSERT] =
        "INSERT INTO artifact(repo_id, project_id, digest, media_type, artifact_type, size,"
        " subject, annotations, push_ms) SELECT ?1, project_id, ?2, ?3, ?4, ?5, ?6, ?7, ?8"
        " FROM repository WHERE id = ?1 RETURNING id",
    [S_ARTIFACT_BLOB_INSERT] = "INSERT INTO artifact_blob(artifact_id, digest) VALUES(?1, ?2)"
                               " ON CONFLICT DO NOTHING",
    [S_ARTIFACT_CHILD_INSERT] = "INSERT INTO artifact_child(artifact_id, child_digest, repo_id)"
                                " VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
    [S_TAG_MOVE] = "UPDATE tag SET artifact_id = ?3, push_ms = ?4 WHERE repo_id = ?1 AND name = ?2",
    [S_TAG_INSERT] = "INSERT INTO tag(repo_id, name, artifact_id, push_ms) VALUES(?1, ?2, ?3, ?4)",
    [S_MANIFEST_BY_TAG] = "SELECT a.id, a.repo_id, a.digest, a.media_type, a.size"
                          " FROM repository r JOIN tag t ON t.repo_id = r.id"
                          " JOIN artifact a ON a.id = t.artifact_id"
                          " WHERE r.name = ?1 AND t.name = ?2",
    [S_MANIFEST_BY_DIGEST] = "SELECT a.id, a.repo_id, a.digest, a.media_type, a.size"
                             " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                             " WHERE r.name = ?1 AND a.digest = ?2",
    [S_ARTIFACT_DELETE] = "DELETE FROM artifact WHERE digest = ?2"
                          " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_TAG_DELETE] = "DELETE FROM tag WHERE name = ?2"
                     " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_TAG_LIST] = "SELECT t.name FROM repository r JOIN tag t ON t.repo_id = r.id"
                   " WHERE r.name = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3",
    [S_REFERRERS] = "SELECT a.digest, a.media_type, a.artifact_type, a.annotations, a.size"
                    " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                    " WHERE r.name = ?1 AND a.subject = ?2 ORDER BY a.push_ms, a.id",
    [S_REFERRERS_TYPE] = "SELECT a.digest, a.media_type, a.artifact_type, a.annotations, a.size"
                         " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                         " WHERE r.name = ?1 AND a.subject = ?2 AND a.artifact_type = ?3"
                         " ORDER BY a.push_ms, a.id",
    [S_PULL_ARTIFACT] = "UPDATE artifact SET pull_ms = ?2 WHERE id = ?1 RETURNING repo_id",
    [S_PULL_REPO] = "UPDATE repository SET pull_count = pull_count + ?2 WHERE id = ?1",
    [S_UPLOAD_INSERT] = "INSERT INTO upload(id, repo, started_ms, updated_ms, project_id, owner)"
                        " VALUES(?1, ?2, ?3, ?3, ?4, ?5)",
    [S_UPLOAD_GET] = "SELECT repo FROM upload WHERE id = ?1",
    [S_UPLOAD_TOUCH] = "UPDATE upload SET updated_ms = ?2 WHERE id = ?1",
    [S_UPLOAD_DELETE] = "DELETE FROM upload WHERE id = ?1",
    [S_UPLOAD_COUNT] = "SELECT count(*) FROM upload",
    [S_UPLOAD_EXPIRED] = "SELECT id FROM upload WHERE updated_ms < ?1 OR started_ms < ?2 LIMIT 1000",
};

#define ADHOC_SLOTS 256 /* statements of the other db_*.c files, cached by SQL pointer */
#define BUILT_SLOTS 128 /* statements assembled per filter combination, cached by text */
#define BUILT_PROBE 8   /* slots tried before one is reused */

struct conn {
    sqlite3 *h;
    sqlite3_stmt *stmt[S_COUNT];
    struct {
        const char *sql;
        sqlite3_stmt *s;
    } adhoc[ADHOC_SLOTS];
    struct {
        char *sql; /* owned copy of the text */
        uint64_t hash;
        sqlite3_stmt *s;
    } built[BUILT_SLOTS];
    int batch; /* inside wh_db_batch: transactions are savepoints of its one */
    bool scan_queued; /* the open transaction queued a scan job (db_note_scan_queued) */
    struct wh_db *db;  /* the handle it belongs to */
    struct conn *next; /* all connections of the db, for close */
};

struct wh_db {
    char *path;
    uint32_t serial; /* this handle among those the process opened (wh_db_data_version) */
    pthread_key_t key;
    pthread_mutex_t lock; /* guards `conns` */
    struct conn *conns;
    void (*on_scan_queued)(void *payload); /* wh_db_on_scan_queued */
    void *on_scan_queued_payload;
    int (*blob_check)(const char *digest, void *payload); /* wh_db_on_blob_recorded */
    void *blob_check_payload;
};

static void conn_close(struct conn *c)
{
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    for (int i = 0; i < ADHOC_SLOTS; i++)
        sqlite3_finalize(c->adhoc[i].s);
    for (int i = 0; i < BUILT_SLOTS; i++) {
        sqlite3_finalize(c->built[i].s);
        free(c->built[i].sql);
    }
    sqlite3_close(c->h);
    free(c);
}

static int exec(sqlite3 *h, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = wh_error_set(WH_ERROR, "sqlite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int conn_open(struct conn **out, const char *path)
{
    struct conn *c = wh_calloc(1, sizeof(*c));
    if (sqlite3_open_v2(path, &c->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        db_vfs_name()) != SQLITE_OK) {
        int rc = wh_error_set(WH_ERROR, "open %s: %s", path, sqlite3_errmsg(c->h));
        conn_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->h, 10000);
    if (exec(c->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;") < 0) {
        conn_close(c);
        return WH_ERROR;
    }
    *out = c;
    return 0;
}

/* The calling thread's connection, opened on first use. */
struct conn *db_conn(wh_db *db)
{
    struct conn *c = pthread_getspecific(db->key);
    if (c)
        return c;
    struct conn *nc = NULL;
    if (conn_open(&nc, db->path) < 0 || !nc)
        return NULL;
    c = nc;
    c->db = db;
    pthread_setspecific(db->key, c);
    pthread_mutex_lock(&db->lock);
    c->next = db->conns;
    db->conns = c;
    pthread_mutex_unlock(&db->lock);
    return c;
}

static sqlite3_stmt *stmt(struct conn *c, enum stmt_id id)
{
    if (!c->stmt[id]) {
        if (sqlite3_prepare_v3(c->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
                               NULL) != SQLITE_OK) {
            wh_log_error("sqlite prepare failed: %s (%s)", sqlite3_errmsg(c->h), stmt_sql[id]);
            abort(); /* a statement of ours that does not compile is a bug */
        }
    }
    return c->stmt[id];
}

sqlite3_stmt *db_stmt(struct conn *c, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 4) % ADHOC_SLOTS;
    for (size_t i = 0; i < ADHOC_SLOTS; i++) {
        size_t k = (h + i) % ADHOC_SLOTS;
        if (c->adhoc[k].sql == sql)
            return c->adhoc[k].s;
        if (!c->adhoc[k].sql) {
            if (sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->adhoc[k].s,
                                   NULL) != SQLITE_OK) {
                wh_log_error("sqlite prepare failed: %s (%s)", sqlite3_errmsg(c->h), sql);
                abort(); /* a statement of ours that does not compile is a bug */
            }
            c->adhoc[k].sql = sql;
            return c->adhoc[k].s;
        }
    }
    abort(); /* more distinct statements than slots: raise ADHOC_SLOTS */
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

sqlite3_stmt *db_stmt_text(struct conn *c, const char *sql)
{
    uint64_t h = text_hash(sql);
    size_t home = (size_t)(h % BUILT_SLOTS), victim = BUILT_SLOTS;
    for (size_t i = 0; i < BUILT_PROBE; i++) {
        size_t k = (home + i) % BUILT_SLOTS;
        if (!c->built[k].sql) {
            victim = k;
            break;
        }
        if (c->built[k].hash == h && strcmp(c->built[k].sql, sql) == 0)
            return c->built[k].s;
        /* A statement still stepping (a caller's row loop) is never replaced. */
        if (victim == BUILT_SLOTS && !sqlite3_stmt_busy(c->built[k].s))
            victim = k;
    }
    if (victim == BUILT_SLOTS)
        abort(); /* BUILT_PROBE statements stepping at once: our bug */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        wh_log_error("sqlite prepare failed: %s (%s)", sqlite3_errmsg(c->h), sql);
        abort(); /* assembled from our own fragments: a bug */
    }
    sqlite3_finalize(c->built[victim].s);
    free(c->built[victim].sql);
    c->built[victim].sql = wh_strdup(sql);
    c->built[victim].hash = h;
    c->built[victim].s = s;
    return s;
}

void db_sql_add(struct db_sql *q, const char *fragment)
{
    size_t n = strlen(fragment);
    if (n >= sizeof(q->text) - q->len) {
        wh_log_error("assembled statement longer than %zu bytes", sizeof(q->text));
        abort(); /* fragments are ours: raise DB_SQL_MAX */
    }
    memcpy(q->text + q->len, fragment, n + 1);
    q->len += n;
}

void db_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int db_fail(struct conn *c)
{
    /*
     * A full disk is an answer of its own (507 on /v2/): SQLITE_FULL, or an
     * I/O error whose system errno says so.
     */
    int rc = sqlite3_extended_errcode(c->h) & 0xff;
    int sys = sqlite3_system_errno(c->h);
    wh_metric_add(WH_METRIC_DB_WRITE_FAILED, 1);
    if (rc == SQLITE_FULL || (rc == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)))
        return wh_error_set(WH_ENOSPC, "sqlite: %s", sqlite3_errmsg(c->h));
    return wh_error_set(WH_ERROR, "sqlite: %s", sqlite3_errmsg(c->h));
}

int db_constraint(struct conn *c, const char *what)
{
    switch (sqlite3_extended_errcode(c->h)) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return wh_error_set(WH_EEXISTS, "%s already exists", what);
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return wh_error_set(WH_ENOTFOUND, "%s: a row it refers to does not exist", what);
    default:
        return db_fail(c); /* any other failure is the server's, not the caller's */
    }
}

void db_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

void db_copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* Runs a statement that returns no rows. */
int db_run(struct conn *c, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    int error = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int db_tx_begin(struct conn *c)
{
    return db_run(c, stmt(c, c->batch ? S_SAVEPOINT : S_BEGIN));
}

void db_note_scan_queued(struct conn *c)
{
    if (!c->db || !c->db->on_scan_queued)
        return;
    if (sqlite3_get_autocommit(c->h))
        c->db->on_scan_queued(c->db->on_scan_queued_payload); /* already committed */
    else
        c->scan_queued = true; /* told by db_tx_end once committed */
}

void wh_db_on_scan_queued(wh_db *db, void (*fn)(void *payload), void *payload)
{
    db->on_scan_queued = fn;
    db->on_scan_queued_payload = payload;
}

void wh_db_on_blob_recorded(wh_db *db, int (*fn)(const char *digest, void *payload),
                            void *payload)
{
    db->blob_check = fn;
    db->blob_check_payload = payload;
}

int db_tx_end(struct conn *c, int error)
{
    if (error < 0) {
        if (!c->batch)
            c->scan_queued = false;
        if (c->batch) {
            db_run(c, stmt(c, S_ROLLBACK_TO));
            db_run(c, stmt(c, S_RELEASE));
        } else if (!sqlite3_get_autocommit(c->h)) { /* SQLite may have rolled back already */
            db_run(c, stmt(c, S_ROLLBACK));
        }
        return error;
    }
    if (c->batch)
        return db_run(c, stmt(c, S_RELEASE));
    error = db_run(c, stmt(c, S_COMMIT));
    if (error == 0 && c->scan_queued && c->db && c->db->on_scan_queued)
        c->db->on_scan_queued(c->db->on_scan_queued_payload);
    c->scan_queued = false;
    /*
     * A COMMIT that fails (a full disk) may leave the transaction open; this
     * connection would then hold the write lock and every later BEGIN on it
     * would fail. Roll back what is left.
     */
    if (error < 0 && !sqlite3_get_autocommit(c->h)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", wh_error_msg());
        db_run(c, stmt(c, S_ROLLBACK));
        wh_error_set(error, "%s", msg);
    }
    return error;
}

uint64_t wh_db_data_version(wh_db *db)
{
    struct conn *c = db_conn(db);
    unsigned v = 0;
    if (!c || sqlite3_file_control(c->h, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK)
        return 0;
    /* the handle's serial too: two databases (or one reopened) never share a value */
    return (uint64_t)db->serial << 32 | ((uint64_t)v + 1); /* never 0 ("unknown") */
}

int wh_db_batch(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload)
{
    CONN_OR_FAIL(c, db);
    if (c->batch)
        return fn(db, payload); /* already in one */
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    c->batch = 1;
    error = fn(db, payload);
    c->batch = 0;
    return db_tx_end(c, error);
}


/* ---- open / close ---- */

static void thread_conn_free(void *p)
{
    (void)p; /* connections are closed by wh_db_close, which owns the list */
}

/* Fails when a row refers to a row that does not exist (PRAGMA foreign_key_check). */
static int fk_check(struct conn *c)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->h, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK)
        return db_fail(c);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        error = wh_error_set(WH_ERROR, "migration left a dangling reference in table %s",
                             (const char *)sqlite3_column_text(s, 0));
    else if (rc != SQLITE_DONE)
        error = db_fail(c);
    sqlite3_finalize(s);
    return error;
}

/* Applies the migrations after the database's user_version, up to `upto` (-1: all). */
static int migrate(struct conn *c, int upto)
{
    sqlite3_stmt *s = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(c->h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_fail(c);
    if (sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    int n = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (upto >= 0 && upto < n)
        n = upto;
    /*
     * Foreign keys are off while a migration runs (SQLite ignores the pragma
     * inside a transaction): a migration that rebuilds a table drops the old
     * one, and with foreign keys on that DROP would delete or refuse the rows
     * that refer to it. The references are checked before the commit instead.
     */
    if (version < n && exec(c->h, "PRAGMA foreign_keys=OFF") < 0)
        return WH_ERROR;
    int error = 0;
    for (int v = version; v < n && error == 0; v++) {
        char pragma[64];
        if ((error = exec(c->h, "BEGIN IMMEDIATE")) < 0)
            break;
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", v + 1);
        if ((error = exec(c->h, migrations[v])) < 0 || (error = fk_check(c)) < 0 ||
            (error = exec(c->h, pragma)) < 0) {
            exec(c->h, "ROLLBACK");
            break;
        }
        if ((error = exec(c->h, "COMMIT")) < 0)
            break;
        wh_log_info("database migrated to schema version %d", v + 1);
    }
    if (version < n && exec(c->h, "PRAGMA foreign_keys=ON") < 0 && error == 0)
        error = WH_ERROR;
    return error;
}

int db_open_at(wh_db **out, const char *path, int version)
{
    static _Atomic uint32_t serials;
    wh_db *db = wh_calloc(1, sizeof(*db));
    db->serial = ++serials;
    db->path = wh_strdup(path);
    pthread_mutex_init(&db->lock, NULL);
    pthread_key_create(&db->key, thread_conn_free);
    struct conn *c = db_conn(db);
    if (!c || migrate(c, version) < 0) {
        int rc = wh_error_set(WH_ERROR, "database %s: %s", path, wh_error_msg());
        wh_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

int wh_db_schema_latest(void)
{
    return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

int wh_db_open(wh_db **out, const char *path)
{
    return db_open_at(out, path, -1);
}

void wh_db_close(wh_db *db)
{
    if (!db)
        return;
    while (db->conns) {
        struct conn *c = db->conns;
        db->conns = c->next;
        conn_close(c);
    }
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
}

void wh_db_thread_done(wh_db *db)
{
    struct conn *c = pthread_getspecific(db->key);
    if (!c)
        return;
    pthread_setspecific(db->key, NULL);
    pthread_mutex_lock(&db->lock);
    for (struct conn **pp = &db->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&db->lock);
    conn_close(c);
}

/* ---- projects ---- */

int wh_db_project_create(wh_db *db, const char *name, bool public, int64_t *id_out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_PROJECT_INSERT);
    db_bind_text(s, 1, name);
    sqlite3_bind_int(s, 2, public);
    sqlite3_bind_int64(s, 3, wh_now_ms());
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_CONSTRAINT)
        error = wh_error_set(WH_EEXISTS, "project %s already exists", name);
    else if (rc != SQLITE_DONE)
        error = db_fail(c);
    else if (id_out)
        *id_out = sqlite3_last_insert_rowid(c->h);
    db_done(s);
    return error;
}

static void project_row(struct wh_project *p, sqlite3_stmt *s)
{
    p->id = sqlite3_column_int64(s, 0);
    db_copy_col(p->name, sizeof(p->name), s, 1);
    p->public = sqlite3_column_int(s, 2) != 0;
    p->created_ms = sqlite3_column_int64(s, 3);
}

int wh_db_project_get(wh_db *db, const char *name, struct wh_project *out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_PROJECT_GET);
    db_bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        project_row(out, s);
    else if (rc == SQLITE_DONE)
        error = wh_error_set(WH_ENOTFOUND, "project %s not found", name);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_project_each(wh_db *db, int (*fn)(const struct wh_project *p, void *payload),
                       void *payload)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_PROJECT_ALL);
    int rc, error = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct wh_project p;
        project_row(&p, s);
        if (fn(&p, payload) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

/* ---- repositories ---- */

int wh_db_repo_get(wh_db *db, const char *name, struct wh_repo *out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_REPO_GET);
    db_bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        out->project_id = sqlite3_column_int64(s, 1);
        db_copy_col(out->name, sizeof(out->name), s, 2);
    } else if (rc == SQLITE_DONE) {
        error = wh_error_set(WH_ENOTFOUND, "repository %s not found", name);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

/* Pages through a one-column text query: binds (…, last, n+1) and reports `more`. */
static int list_page(struct conn *c, sqlite3_stmt *s, int last_idx, const char *last, int64_t n,
                     int (*fn)(const char *, void *), void *payload, bool *more_out)
{
    int rc, error = 0;
    int64_t seen = 0;
    db_bind_text(s, last_idx, last ? last : "");
    sqlite3_bind_int64(s, last_idx + 1, n + 1);
    *more_out = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (seen == n) {
            *more_out = true;
            break;
        }
        seen++;
        if (fn((const char *)sqlite3_column_text(s, 0), payload) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_repo_list(wh_db *db, const char *last, int64_t n,
                    int (*fn)(const char *name, void *payload), void *payload, bool *more_out)
{
    CONN_OR_FAIL(c, db);
    return list_page(c, stmt(c, S_REPO_LIST), 1, last, n, fn, payload, more_out);
}

/* Creates the repository if needed; returns its id in `*id_out`. Inside a transaction. */
/*
 * Steps a statement that returns an id (RETURNING): `*id_out` is 0 when it
 * returned no row. Resets `s`.
 */
static int step_id(struct conn *c, sqlite3_stmt *s, int64_t *id_out)
{
    int rc = sqlite3_step(s);
    int error = 0;
    *id_out = 0;
    if (rc == SQLITE_ROW)
        *id_out = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

static int repo_ensure(struct conn *c, int64_t project_id, const char *repo, int64_t now,
                       int64_t *id_out)
{
    sqlite3_stmt *s = stmt(c, S_REPO_TOUCH_NAME);
    db_bind_text(s, 1, repo);
    sqlite3_bind_int64(s, 2, now);
    int error = step_id(c, s, id_out);
    if (error < 0 || *id_out > 0)
        return error;
    s = stmt(c, S_REPO_INSERT);
    sqlite3_bind_int64(s, 1, project_id);
    db_bind_text(s, 2, repo);
    sqlite3_bind_int64(s, 3, now);
    if ((error = step_id(c, s, id_out)) == 0 && *id_out == 0)
        error = wh_error_set(WH_ERROR, "repository %s was not created", repo);
    return error;
}

/* ---- blobs ---- */

static int blob_record(struct conn *c, int64_t repo_id, const char *digest, uint64_t size,
                       int64_t now)
{
    sqlite3_stmt *s = stmt(c, S_BLOB_INSERT);
    db_bind_text(s, 1, digest);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)size);
    sqlite3_bind_int64(s, 3, now);
    int error = db_run(c, s);
    if (error < 0)
        return error;
    if (db_changes(c) > 0) {
        /*
         * A new row: the collector may have deleted the blob (row and file,
         * under the write lock we now hold) after the caller stored it and
         * before this transaction began. The file must be there now, or the
         * row would promise bytes nobody has.
         */
        if (c->db && c->db->blob_check && c->db->blob_check(digest, c->db->blob_check_payload) < 0)
            return wh_error_set(WH_EBUSY, "blob %s was collected while it was stored: retry",
                                digest);
    } else if ((error = db_gc_postpone_blob(c, digest, now)) < 0) {
        return error; /* an existing blob pushed again: its review waits again */
    }
    s = stmt(c, S_REPO_BLOB_INSERT);
    sqlite3_bind_int64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    return db_run(c, s);
}

/*
 * Inside a write transaction: reserves the quota for a blob about to be
 * linked into the project, so that what the check saw is what the commit
 * writes (two pushes checked side by side cannot both take the last bytes).
 * Nothing is charged for a blob the project holds already. 0, WH_EDENIED
 * (Harbor's message) or WH_ERROR.
 */
static int quota_reserve(wh_db *db, int64_t project_id, const char *digest, uint64_t size)
{
    bool have = false;
    char msg[512];
    int error = wh_db_project_has_blob(db, project_id, digest, &have);
    if (error < 0 || have)
        return error;
    return wh_db_project_quota_check(db, project_id, size, msg, sizeof(msg));
}

int wh_db_blob_link(wh_db *db, int64_t project_id, const char *repo, const char *digest,
                    uint64_t size)
{
    CONN_OR_FAIL(c, db);
    int64_t now = wh_now_ms(), repo_id = 0;
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    if ((error = quota_reserve(db, project_id, digest, size)) == 0 &&
        (error = repo_ensure(c, project_id, repo, now, &repo_id)) == 0)
        error = blob_record(c, repo_id, digest, size, now);
    return db_tx_end(c, error);
}

int wh_db_blob_get(wh_db *db, const char *repo, const char *digest, uint64_t *size_out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_BLOB_GET);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        *size_out = (uint64_t)sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        error = wh_error_set(WH_ENOTFOUND, "blob unknown to repository");
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

/* Runs a DELETE/UPDATE keyed by (repo, key); WH_ENOTFOUND when nothing changed. */
static int change_one(wh_db *db, enum stmt_id id, const char *repo, const char *key,
                      const char *what)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, id);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, key);
    int error = db_run(c, s);
    if (error == 0 && sqlite3_changes(c->h) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s unknown to repository", what);
    return error;
}

/*
 * Inside a transaction: the first manifest of `repo` that `sql` finds for
 * `digest`, with one of its tags (or "" when it has none). 0 when there is
 * one, WH_ENOTFOUND when not, WH_ERROR.
 */
static int first_user(struct conn *c, const char *sql, const char *repo, const char *digest,
                      char *digest_out, char *tag_out)
{
    sqlite3_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int error = db_one_row(c, s, "referencing manifest");
    if (error < 0)
        return error;
    db_copy_col(digest_out, WH_DIGEST_STR_MAX, s, 0);
    db_copy_col(tag_out, WH_NAME_MAX, s, 1);
    db_done(s);
    return 0;
}

/* " (tagged t)" or " (untagged)", in `buf`. */
static const char *tagged(char *buf, size_t cap, const char *tag)
{
    if (*tag)
        snprintf(buf, cap, " (tagged %s)", tag);
    else
        snprintf(buf, cap, " (untagged)");
    return buf;
}

#define ONE_TAG "(SELECT t.name FROM tag t WHERE t.artifact_id = a.id ORDER BY t.name LIMIT 1)"


/* Runs the delete `id` bound to (repo, digest): WH_ENOTFOUND (`missing`) when it
 * deleted nothing. */
static int delete_one(struct conn *c, enum stmt_id id, const char *repo, const char *digest,
                      const char *missing)
{
    sqlite3_stmt *s = stmt(c, id);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int error = db_run(c, s);
    if (error == 0 && sqlite3_changes(c->h) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s", missing);
    return error;
}

static int blob_unlink_tx(struct conn *c, const char *repo, const char *digest)
{
    /* the blob is a manifest of the repository, or a manifest's config or layer */
    static const char users[] =
        "SELECT a.digest, " ONE_TAG " FROM repository r JOIN artifact a ON a.repo_id = r.id"
        " WHERE r.name = ?1 AND a.digest = ?2"
        " UNION ALL SELECT a.digest, " ONE_TAG " FROM repository r"
        " JOIN artifact a ON a.repo_id = r.id JOIN artifact_blob ab ON ab.artifact_id = a.id"
        " WHERE r.name = ?1 AND ab.digest = ?2 LIMIT 1";
    char by[WH_DIGEST_STR_MAX], tag[WH_NAME_MAX], tb[WH_NAME_MAX + 16];
    int error = first_user(c, users, repo, digest, by, tag);
    if (error == 0 && strcmp(by, digest) == 0)
        return wh_error_set(WH_ECONFLICT,
                            "%s is a manifest of this repository%s: delete it as a manifest",
                            digest, tagged(tb, sizeof(tb), tag));
    if (error == 0)
        return wh_error_set(WH_ECONFLICT,
                            "blob %s is referenced by manifest %s%s of this repository: delete "
                            "the manifest first",
                            digest, by, tagged(tb, sizeof(tb), tag));
    if (error != WH_ENOTFOUND)
        return error;
    return delete_one(c, S_BLOB_UNLINK, repo, digest, "blob unknown to repository");
}

int wh_db_blob_unlink(wh_db *db, const char *repo, const char *digest)
{
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, blob_unlink_tx(c, repo, digest));
}

/* ---- manifests ---- */

static int has_row(struct conn *c, enum stmt_id id, int64_t repo_id, const char *digest,
                   bool *out)
{
    sqlite3_stmt *s = stmt(c, id);
    sqlite3_bind_int64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    return db_exists(c, s, out);
}

/* Links the artifact to each digest (?1 artifact, ?2 digest, ?3 its repository). */
static int link_each(struct conn *c, enum stmt_id id, int64_t artifact_id, int64_t repo_id,
                     const char **digests, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *s = stmt(c, id);
        sqlite3_bind_int64(s, 1, artifact_id);
        db_bind_text(s, 2, digests[i]);
        if (sqlite3_bind_parameter_count(s) >= 3)
            sqlite3_bind_int64(s, 3, repo_id);
        int error = db_run(c, s);
        if (error < 0)
            return error;
    }
    return 0;
}

static int manifest_put_tx(wh_db *db, struct conn *c, const struct wh_artifact_in *a)
{
    int64_t now = wh_now_ms(), repo_id = 0, artifact_id = 0;
    bool ok;
    int error;

    if ((error = repo_ensure(c, a->project_id, a->repo, now, &repo_id)) < 0)
        return error;
    for (size_t i = 0; i < a->nblobs; i++) {
        if ((error = has_row(c, S_REPO_BLOB_HAS, repo_id, a->blobs[i], &ok)) < 0)
            return error;
        if (!ok)
            return wh_error_set(WH_ENOTFOUND, "blob %s", a->blobs[i]);
    }
    for (size_t i = 0; i < a->nchildren; i++) {
        if ((error = has_row(c, S_ARTIFACT_HAS, repo_id, a->children[i], &ok)) < 0)
            return error;
        if (!ok)
            return wh_error_set(WH_ENOTFOUND, "manifest %s", a->children[i]);
    }
    /* The manifest bytes are a blob of the repository too, and count towards the quota. */
    if ((error = quota_reserve(db, a->project_id, a->digest, a->size)) < 0 ||
        (error = blob_record(c, repo_id, a->digest, a->size, now)) < 0)
        return error;

    sqlite3_stmt *s = stmt(c, S_ARTIFACT_REPUSH);
    sqlite3_bind_int64(s, 1, repo_id);
    db_bind_text(s, 2, a->digest);
    sqlite3_bind_int64(s, 3, now);
    if ((error = step_id(c, s, &artifact_id)) < 0)
        return error;
    if (artifact_id == 0) {
        s = stmt(c, S_ARTIFACT_INSERT);
        sqlite3_bind_int64(s, 1, repo_id);
        db_bind_text(s, 2, a->digest);
        db_bind_text(s, 3, a->media_type);
        db_bind_text(s, 4, a->artifact_type);
        sqlite3_bind_int64(s, 5, (sqlite3_int64)a->size);
        db_bind_text(s, 6, a->subject);
        db_bind_text(s, 7, a->annotations);
        sqlite3_bind_int64(s, 8, now);
        if ((error = step_id(c, s, &artifact_id)) < 0)
            return error;
        if (artifact_id == 0)
            return wh_error_set(WH_ERROR, "artifact %s was not recorded", a->digest);
    }
    if ((error = link_each(c, S_ARTIFACT_BLOB_INSERT, artifact_id, repo_id, a->blobs,
                            a->nblobs)) < 0)
        return error;
    if ((error = link_each(c, S_ARTIFACT_CHILD_INSERT, artifact_id, repo_id, a->children,
                            a->nchildren)) <
        0)
        return error;
    if (a->tag) {
        /* Moved when it exists (keeping its id), else created. */
        for (int i = 0; i < 2; i++) {
            s = stmt(c, i == 0 ? S_TAG_MOVE : S_TAG_INSERT);
            sqlite3_bind_int64(s, 1, repo_id);
            db_bind_text(s, 2, a->tag);
            sqlite3_bind_int64(s, 3, artifact_id);
            sqlite3_bind_int64(s, 4, now);
            if ((error = db_run(c, s)) < 0)
                return error;
            if (db_changes(c) > 0)
                break;
        }
    }
    return db_scan_autoqueue(c, artifact_id, a, now);
}

int wh_db_manifest_put(wh_db *db, const struct wh_artifact_in *a)
{
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, manifest_put_tx(db, c, a));
}

int wh_db_manifest_get(wh_db *db, const char *repo, const char *ref, bool is_digest,
                       struct wh_manifest_ref *out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, is_digest ? S_MANIFEST_BY_DIGEST : S_MANIFEST_BY_TAG);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, ref);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW) {
        out->artifact_id = sqlite3_column_int64(s, 0);
        out->repo_id = sqlite3_column_int64(s, 1);
        db_copy_col(out->digest, sizeof(out->digest), s, 2);
        db_copy_col(out->media_type, sizeof(out->media_type), s, 3);
        out->size = (uint64_t)sqlite3_column_int64(s, 4);
    } else if (rc == SQLITE_DONE) {
        error = wh_error_set(WH_ENOTFOUND, "manifest unknown");
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

static int manifest_delete_tx(struct conn *c, const char *repo, const char *digest)
{
    static const char parents[] =
        "SELECT a.digest, " ONE_TAG " FROM repository r JOIN artifact a ON a.repo_id = r.id"
        " JOIN artifact_child ch ON ch.artifact_id = a.id"
        " WHERE r.name = ?1 AND ch.child_digest = ?2 LIMIT 1";
    char by[WH_DIGEST_STR_MAX], tag[WH_NAME_MAX], tb[WH_NAME_MAX + 16];
    int error = first_user(c, parents, repo, digest, by, tag);
    if (error == 0)
        return wh_error_set(WH_ECONFLICT,
                            "manifest %s is listed by index %s%s of this repository: delete the "
                            "index first",
                            digest, by, tagged(tb, sizeof(tb), tag));
    if (error != WH_ENOTFOUND)
        return error;
    return delete_one(c, S_ARTIFACT_DELETE, repo, digest, "manifest unknown to repository");
}

int wh_db_manifest_delete(wh_db *db, const char *repo, const char *digest)
{
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, manifest_delete_tx(c, repo, digest));
}

int wh_db_tag_delete(wh_db *db, const char *repo, const char *tag)
{
    return change_one(db, S_TAG_DELETE, repo, tag, "tag");
}

int wh_db_tag_list(wh_db *db, const char *repo, const char *last, int64_t n,
                   int (*fn)(const char *tag, void *payload), void *payload, bool *more_out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_TAG_LIST);
    db_bind_text(s, 1, repo);
    return list_page(c, s, 2, last, n, fn, payload, more_out);
}

int wh_db_referrers(wh_db *db, const char *repo, const char *subject, const char *artifact_type,
                    int (*fn)(const struct wh_referrer *r, void *payload), void *payload)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, artifact_type ? S_REFERRERS_TYPE : S_REFERRERS);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, subject);
    if (artifact_type)
        db_bind_text(s, 3, artifact_type);
    int rc, error = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct wh_referrer r = {
            .digest = (const char *)sqlite3_column_text(s, 0),
            .media_type = (const char *)sqlite3_column_text(s, 1),
            .artifact_type = (const char *)sqlite3_column_text(s, 2),
            .annotations = (const char *)sqlite3_column_text(s, 3),
            .size = (uint64_t)sqlite3_column_int64(s, 4),
        };
        if (fn(&r, payload) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_pulls_record(wh_db *db, const int64_t *artifact_ids, const int64_t *counts, size_t n,
                       int64_t when_ms)
{
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    for (size_t i = 0; i < n && error == 0; i++) {
        sqlite3_stmt *s = stmt(c, S_PULL_ARTIFACT);
        sqlite3_bind_int64(s, 1, artifact_ids[i]);
        sqlite3_bind_int64(s, 2, when_ms);
        int rc = sqlite3_step(s);
        int64_t repo_id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            error = db_fail(c);
        db_done(s);
        if (error < 0 || repo_id == 0)
            continue; /* the artifact was deleted meanwhile */
        s = stmt(c, S_PULL_REPO);
        sqlite3_bind_int64(s, 1, repo_id);
        sqlite3_bind_int64(s, 2, counts[i]);
        error = db_run(c, s);
    }
    return db_tx_end(c, error);
}

/* ---- upload sessions ---- */

/* Sessions in one scope and the last activity of its most idle one (`now_ms` when empty). */
static int upload_scope(struct conn *c, const char *sql, int64_t key, const char *text_key,
                        int64_t now_ms, int64_t *n_out, int64_t *oldest_out)
{
    sqlite3_stmt *s = db_stmt(c, sql);
    if (text_key)
        db_bind_text(s, 1, text_key);
    else if (sqlite3_bind_parameter_count(s) > 0)
        sqlite3_bind_int64(s, 1, key);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW) {
        *n_out = sqlite3_column_int64(s, 0);
        *oldest_out = sqlite3_column_type(s, 1) == SQLITE_NULL ? now_ms
                                                               : sqlite3_column_int64(s, 1);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

static int upload_create_tx(struct conn *c, const char *id, const char *repo, int64_t project_id,
                            const char *owner, int64_t now_ms, const struct wh_upload_caps *caps,
                            struct wh_upload_refusal *refused)
{
    static const char by_owner[] = "SELECT count(*), min(updated_ms) FROM upload WHERE owner = ?1";
    static const char by_project[] =
        "SELECT count(*), min(updated_ms) FROM upload WHERE project_id = ?1";
    static const char all[] = "SELECT count(*), min(updated_ms) FROM upload";
    const struct {
        int64_t cap;
        const char *sql;
        int64_t key;
        const char *text_key;
        enum wh_upload_scope scope;
    } checks[] = {
        {owner && *owner ? caps->per_owner : 0, by_owner, 0, owner, WH_UPLOAD_OWNER},
        {project_id ? caps->per_project : 0, by_project, project_id, NULL, WH_UPLOAD_PROJECT},
        {caps->total, all, 0, NULL, WH_UPLOAD_SERVER},
    };
    int error;
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        int64_t n = 0, oldest = now_ms;
        if (checks[i].cap <= 0)
            continue;
        error = upload_scope(c, checks[i].sql, checks[i].key, checks[i].text_key, now_ms, &n,
                             &oldest);
        if (error < 0)
            return error;
        if (n >= checks[i].cap) {
            refused->scope = checks[i].scope;
            refused->limit = checks[i].cap;
            refused->oldest_ms = oldest;
            return wh_error_set(WH_EBUSY, "too many open upload sessions");
        }
    }
    sqlite3_stmt *s = stmt(c, S_UPLOAD_INSERT);
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, repo);
    sqlite3_bind_int64(s, 3, now_ms);
    sqlite3_bind_int64(s, 4, project_id);
    db_bind_text(s, 5, owner ? owner : "");
    return db_run(c, s);
}

int wh_db_upload_create(wh_db *db, const char *id, const char *repo, int64_t project_id,
                        const char *owner, int64_t now_ms, const struct wh_upload_caps *caps,
                        struct wh_upload_refusal *refused)
{
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, upload_create_tx(c, id, repo, project_id, owner, now_ms, caps, refused));
}

int wh_db_upload_get(wh_db *db, const char *id, char *repo_out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_UPLOAD_GET);
    db_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        db_copy_col(repo_out, WH_NAME_MAX, s, 0);
    else if (rc == SQLITE_DONE)
        error = wh_error_set(WH_ENOTFOUND, "upload unknown");
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_upload_touch(wh_db *db, const char *id, int64_t now_ms)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_UPLOAD_TOUCH);
    db_bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_upload_delete(wh_db *db, const char *id)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_UPLOAD_DELETE);
    db_bind_text(s, 1, id);
    return db_run(c, s);
}

int wh_db_upload_count(wh_db *db, int64_t *out)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_UPLOAD_COUNT);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_upload_expired(wh_db *db, int64_t idle_before_ms, int64_t started_before_ms,
                         int (*fn)(const char *id, void *payload), void *payload)
{
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = stmt(c, S_UPLOAD_EXPIRED);
    sqlite3_bind_int64(s, 1, idle_before_ms);
    sqlite3_bind_int64(s, 2, started_before_ms);
    /* Collect first: the callback deletes rows, which must not run under our cursor. */
    char *ids[1000];
    size_t n = 0;
    int rc = SQLITE_DONE, error = 0;
    while (n < 1000 && (rc = sqlite3_step(s)) == SQLITE_ROW)
        ids[n++] = wh_strdup((const char *)sqlite3_column_text(s, 0));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        if (!stop && fn(ids[i], payload) != 0)
            stop = true;
        free(ids[i]);
    }
    return error;
}

int db_changes(struct conn *c)
{
    return sqlite3_changes(c->h);
}

int64_t db_last_id(struct conn *c)
{
    return sqlite3_last_insert_rowid(c->h);
}

int db_one_row(struct conn *c, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 0;
    int error = rc == SQLITE_DONE ? wh_error_set(WH_ENOTFOUND, "%s not found", what) : db_fail(c);
    db_done(s);
    return error;
}

int db_insert(struct conn *c, sqlite3_stmt *s, const char *what, int64_t *id_out)
{
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        error = db_constraint(c, what);
    else if (id_out)
        *id_out = sqlite3_last_insert_rowid(c->h);
    db_done(s);
    return error;
}

int db_change(struct conn *c, sqlite3_stmt *s, const char *what)
{
    int error = db_run(c, s);
    if (error == 0 && sqlite3_changes(c->h) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s not found", what);
    return error;
}

int db_count(struct conn *c, sqlite3_stmt *s, int64_t *out)
{
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int db_rows(struct conn *c, sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *payload),
            void *payload)
{
    int rc, error = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (row(s, payload) != 0)
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

int db_exists(struct conn *c, sqlite3_stmt *s, bool *out)
{
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *out = rc == SQLITE_ROW;
    else
        error = db_fail(c);
    db_done(s);
    return error;
}
