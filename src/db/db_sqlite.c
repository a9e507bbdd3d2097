/*
 * db_sqlite.c: the SQLite driver (db_driver.h), the embedded default.
 *
 * Connections run in WAL mode (readers beside the one writer), with foreign
 * keys on and a busy timeout, through the VFS of db_vfs.c (the failpoint
 * "db.write"). A driver statement is the sqlite3_stmt itself and the
 * accessors are SQLite's own calls, so the core's indirect call is the only
 * cost over calling SQLite directly. Writers take BEGIN IMMEDIATE so that
 * two writers queue on the busy timeout instead of failing on lock upgrade.
 * The schema is the numbered scripts below, tracked by PRAGMA user_version.
 */
#include "db/db_int.h"

#include "common/metrics.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    /*
     * 13: upload sessions any node can resume (db_upload_state.c): the bytes
     * accepted so far and the storage driver's state at that point (running
     * hash, an object store's multipart id and parts), and a lease naming
     * the request writing to the session and until when.
     */
    "ALTER TABLE upload ADD COLUMN accepted_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE upload ADD COLUMN state TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE upload ADD COLUMN holder TEXT;"
    "ALTER TABLE upload ADD COLUMN held_until_ms INTEGER NOT NULL DEFAULT 0;"
    /*
     * ... and what artifact lists show of a manifest (db_manifest_summary.c),
     * recorded at push time so that a list never reads blob storage: the
     * image config's fields (extra_attrs) and an index's children
     * (references), as JSON text. Manifests pushed before are summarised
     * on their first listing.
     */
    "CREATE TABLE manifest_summary("
    "  digest TEXT PRIMARY KEY,"
    "  extra_attrs TEXT NOT NULL,"
    "  refs TEXT NOT NULL);",
    /*
     * 14: state every node must see (db_session.c). Portal sessions: the
     * SHA-256 of the session id (never the id), the user, a fingerprint of
     * the user's password hash at sign-in (a change ends the session), and
     * the times: sign-in, last use (written at most once a minute) and the
     * absolute end. Failed logins: the count of one throttle key (a hash of
     * the name and address, or of the address) in its window.
     */
    "CREATE TABLE portal_session("
    "  id_hash TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  stamp TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  seen_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);"
    "CREATE INDEX portal_session_user ON portal_session(user_id, seen_ms);"
    "CREATE INDEX portal_session_seen ON portal_session(seen_ms);"
    "CREATE INDEX portal_session_expires ON portal_session(expires_ms);"
    "CREATE TABLE login_failure("
    "  id TEXT PRIMARY KEY,"
    "  fails INTEGER NOT NULL,"
    "  first_ms INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL);"
    "CREATE INDEX login_failure_first ON login_failure(first_ms);",
    /*
     * 15: scan job leases (db_scan.c): the node running a job and until when
     * its lease holds, so that a node's jobs are taken back only once it has
     * died (its lease ended), not whenever another node starts.
     */
    "ALTER TABLE scan_job ADD COLUMN holder TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE scan_job ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX scan_job_lease ON scan_job(lease_ms) WHERE status = 'Running';",
    /*
     * 16: retries (db_scan.c, db_gc.c): a queued scan job is due at due_ms
     * (its queueing, or a failed attempt's backoff later), claimed in that
     * order; a garbage collection run names the node running it and counts
     * the times one took it, so that a run cut off by a node's death is
     * taken back by another node, and one that kills every node ends.
     */
    "ALTER TABLE scan_job ADD COLUMN due_ms INTEGER NOT NULL DEFAULT 0;"
    "UPDATE scan_job SET due_ms = queued_ms;"
    "CREATE INDEX scan_job_due ON scan_job(due_ms) WHERE status = 'Pending';"
    "ALTER TABLE gc_run ADD COLUMN holder TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE gc_run ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;",
    /*
     * 17: re-matching and CVE exports as queued jobs (db_finding.c). One
     * rematch_run per vulnerability database content (its digest), queued by
     * whichever node loads that database, claimed under a lease by a node
     * that has it loaded, its progress a cursor (the last inventory id done,
     * written with each page's results) so that a node taking it over goes on
     * from there; an export names the node running it and that node's lease.
     */
    "CREATE TABLE rematch_run("
    "  vulndb TEXT PRIMARY KEY,"                  /* the database's content digest */
    "  status TEXT NOT NULL,"                     /* Pending, Running, Success, Error */
    "  after_id INTEGER NOT NULL DEFAULT 0,"      /* the cursor: inventories up to it done */
    "  holder TEXT NOT NULL DEFAULT '',"
    "  lease_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  due_ms INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  inventories INTEGER NOT NULL DEFAULT 0,"
    "  artifacts INTEGER NOT NULL DEFAULT 0,"
    "  changed INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  log TEXT NOT NULL DEFAULT '');"
    "ALTER TABLE cve_export ADD COLUMN holder TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE cve_export ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 0;",
    /*
     * 18: fewer pages written per push. upload_updated goes: the sweep's
     * "idle or started too long ago" test reads every row whatever the
     * index (the sessions in flight are few, capped per user and project),
     * and each PATCH moved the row in it. The blob review queue and the
     * manifest summaries, keyed by a digest, keep their rows in the key's
     * own b-tree (WITHOUT ROWID: one b-tree each instead of a table and its
     * key's index). The triggers feeding the queue name it, so the rebuilt
     * table takes the old name with legacy_alter_table on (a rename checks
     * every trigger against the schema of that moment, when the queue is
     * dropped).
     */
    "DROP INDEX upload_updated;"
    "PRAGMA legacy_alter_table=ON;"
    "CREATE TABLE gc_blob_review_18("
    "  digest TEXT PRIMARY KEY,"
    "  review_after_ms INTEGER NOT NULL,"
    "  review_count INTEGER NOT NULL DEFAULT 0,"
    "  event TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO gc_blob_review_18(digest, review_after_ms, review_count, event)"
    "  SELECT digest, review_after_ms, review_count, event FROM gc_blob_review;"
    "DROP TABLE gc_blob_review;"
    "ALTER TABLE gc_blob_review_18 RENAME TO gc_blob_review;"
    "CREATE INDEX gc_blob_review_due ON gc_blob_review(review_after_ms);"
    "CREATE TABLE manifest_summary_18("
    "  digest TEXT PRIMARY KEY,"
    "  extra_attrs TEXT NOT NULL,"
    "  refs TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO manifest_summary_18(digest, extra_attrs, refs)"
    "  SELECT digest, extra_attrs, refs FROM manifest_summary;"
    "DROP TABLE manifest_summary;"
    "ALTER TABLE manifest_summary_18 RENAME TO manifest_summary;"
    "PRAGMA legacy_alter_table=OFF;",
};
#pragma GCC diagnostic pop

/* ---- the writers' queue ---- */

/*
 * SQLite has one writer at a time. Its own busy handler sleeps 1, 2, 5, 10,
 * 15, 20 ... ms between tries, so a writer that finds the lock taken for
 * half a millisecond may wait ten; under a burst of pushes most of the tail
 * latency was those sleeps. Writers of this process wait instead on a
 * condition that the end of every write transaction signals (the WAL hook
 * runs once the lock is released), with a short timed wait as the fallback
 * for writers of other processes (the CLI), which do not signal.
 *
 * Threads that write on behalf of background work (scans, re-matching, GC:
 * wh_db_thread_background) give way: they do not begin while a foreground
 * writer (a request) waits, for at most BG_YIELD_MS per transaction, so a
 * burst of pushes is not queued behind the results of the scans it queued.
 * Process-wide, not per database: a spurious wake-up costs one retry.
 */
#define BUSY_TIMEOUT_MS 10000
#define BUSY_POLL_US 1000 /* the timed wait, for writers the condition cannot see */
#define BG_YIELD_MS 50

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ended;     /* a write transaction of this process ended */
    atomic_uint_fast64_t gen; /* count of those ends */
    atomic_int fg_waiting;    /* foreground writers in the busy handler now */
    atomic_int bg_yielding;   /* background writers letting them go first now */
    atomic_int sleepers;      /* threads in writers_wait now */
} writers = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

static _Thread_local bool tl_waiting;    /* counted in writers.fg_waiting */
static _Thread_local uint64_t tl_seen;   /* writers.gen before this thread's last try */
static _Thread_local int64_t tl_wait_us; /* when this wait for the lock began */

/*
 * Wakes one waiting writer: the lock just released goes to one of them, and
 * its own commit wakes the next (waking them all made every one of them try
 * the lock, and all but one go back to sleep, at every commit). Most commits
 * find nobody waiting: then no lock is taken. A sleeper counts itself before
 * it reads `gen` and the signaller bumps `gen` before it reads the count
 * (both sequentially consistent), so one of the two sees the other. Only
 * foreground writers wait on the condition; background ones poll, so that
 * a wake-up never goes to a thread that would only give way again.
 */
static void writers_signal(void)
{
    atomic_fetch_add(&writers.gen, 1);
    if (atomic_load(&writers.sleepers) == 0)
        return;
    pthread_mutex_lock(&writers.lock);
    pthread_cond_signal(&writers.ended);
    pthread_mutex_unlock(&writers.lock);
}

/* Waits until a write transaction ends after `seen` (or `us` pass). */
static void writers_wait(uint64_t seen, long us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += us * 1000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_mutex_lock(&writers.lock);
    atomic_fetch_add(&writers.sleepers, 1);
    while (atomic_load(&writers.gen) == seen &&
           pthread_cond_timedwait(&writers.ended, &writers.lock, &ts) == 0)
        ;
    atomic_fetch_sub(&writers.sleepers, 1);
    pthread_mutex_unlock(&writers.lock);
}

/* Before a try that may write: what "a transaction ended since" compares with. */
static void writers_before(void)
{
    tl_seen = atomic_load_explicit(&writers.gen, memory_order_relaxed);
}

/* After a try: the thread no longer waits for the lock (it has it, or gave up). */
static void writers_after(void)
{
    if (tl_waiting) {
        tl_waiting = false;
        atomic_fetch_sub(&writers.fg_waiting, 1);
        wh_metric_add(WH_METRIC_DB_LOCK_WAITS, 1);
        wh_metric_add(WH_METRIC_DB_LOCK_WAIT_US, (uint64_t)(wh_monotonic_us() - tl_wait_us));
    }
}

/* A background thread lets the foreground writers waiting now go first. */
static void writers_yield(void)
{
    if (!db_thread_background())
        return;
    if (atomic_load(&writers.fg_waiting) == 0)
        return;
    atomic_fetch_add(&writers.bg_yielding, 1);
    int64_t until = wh_monotonic_us() + BG_YIELD_MS * 1000;
    while (atomic_load(&writers.fg_waiting) > 0 && wh_monotonic_us() < until)
        usleep(BUSY_POLL_US);
    atomic_fetch_sub(&writers.bg_yielding, 1);
}

void db_sqlite_writers(int *fg_waiting, int *bg_yielding)
{
    *fg_waiting = atomic_load(&writers.fg_waiting);
    *bg_yielding = atomic_load(&writers.bg_yielding);
}

static int busy_wait(void *payload, int count)
{
    (void)payload;
    int64_t now = wh_monotonic_us();
    if (count == 0) {
        tl_wait_us = now;
        if (!db_thread_background() && !tl_waiting) {
            tl_waiting = true;
            atomic_fetch_add(&writers.fg_waiting, 1);
        }
    }
    if (now - tl_wait_us >= BUSY_TIMEOUT_MS * 1000)
        return 0; /* SQLITE_BUSY: "database is locked" */
    if (db_thread_background())
        usleep(BUSY_POLL_US);
    else
        writers_wait(tl_seen, BUSY_POLL_US);
    tl_seen = atomic_load(&writers.gen);
    writers_yield();
    return 1;
}

/*
 * ---- the checkpoint gate ----
 *
 * Checkpoints never overlap a write transaction of this process, nor each
 * other. SQLite before 3.51.3 (Debian 12 ships 3.40.1) has a race, "the
 * WAL-reset bug" of sqlite.org/wal.html: a checkpoint that starts just as
 * another connection's commit restarts the WAL can leave the WAL-index
 * header wrong, and a later checkpoint then skips frames, so committed pages
 * never reach the database file and are lost at the next restart of the WAL.
 * Concurrent pushes made exactly that pattern: a checkpoint in the hook of
 * commit after commit, on whichever thread committed, while other threads
 * committed beside it.
 *
 * So a write transaction (BEGIN IMMEDIATE to its end, a script, or one
 * statement that writes outside a transaction, until it is done or reset)
 * holds `gate` shared; a checkpoint holds it alone. A commit that leaves the
 * WAL 1000 frames long (SQLite's own threshold) only marks a checkpoint due
 * in its hook; the same thread runs it once its transaction has let the gate
 * go. The lock prefers its exclusive side: writers arriving meanwhile wait
 * for the checkpoint rather than keep it waiting for ever. Holds count per
 * thread: a thread takes the shared side once, whatever it nests.
 */
#define CHECKPOINT_FRAMES 1000
#define GATE_STMTS 4 /* write statements of one thread stopped on a row (RETURNING) */

static pthread_rwlock_t gate;
static atomic_int ckpt_waiting;   /* threads waiting for the gate to run one */
static atomic_uint_fast64_t ckpt_run; /* checkpoints run */
static _Thread_local int tl_gate;                          /* this thread's holds */
static _Thread_local sqlite3_stmt *tl_gate_stmt[GATE_STMTS]; /* holding until reset */
static _Thread_local sqlite3 *tl_ckpt_due; /* the connection whose commit made one due */

static void gate_init(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&gate, &a);
    pthread_rwlockattr_destroy(&a);
}

static void gate_enter(void)
{
    if (tl_gate++ == 0)
        pthread_rwlock_rdlock(&gate);
}

/* A checkpoint of `h`, the gate held alone (the calling thread holds none of it). */
static void checkpoint_alone(sqlite3 *h)
{
    atomic_fetch_add(&ckpt_waiting, 1);
    pthread_rwlock_wrlock(&gate);
    atomic_fetch_sub(&ckpt_waiting, 1);
    /* PASSIVE: copies what no reader still needs; SQLITE_LOCKED when h is mid-read (skipped) */
    sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    atomic_fetch_add(&ckpt_run, 1);
    pthread_rwlock_unlock(&gate);
}

/* Lets one hold go; the last one runs the checkpoint this thread's commit made due. */
static void gate_leave(void)
{
    assert(tl_gate > 0);
    if (--tl_gate > 0)
        return;
    pthread_rwlock_unlock(&gate);
    sqlite3 *h = tl_ckpt_due;
    if (!h)
        return;
    tl_ckpt_due = NULL;
    checkpoint_alone(h);
}

void db_sqlite_checkpoints(int *waiting, uint64_t *run)
{
    *waiting = atomic_load(&ckpt_waiting);
    *run = atomic_load(&ckpt_run);
}

/* A statement that writes, run outside a transaction, holds the gate until it is done. */
static bool gate_stmt_needs(sqlite3_stmt *st)
{
    return !sqlite3_stmt_readonly(st) && sqlite3_get_autocommit(sqlite3_db_handle(st));
}

/* Whether `st` holds the gate (stopped on a row); forgets it when `drop`. */
static bool gate_stmt_held(sqlite3_stmt *st, bool drop)
{
    for (int i = 0; i < GATE_STMTS; i++) {
        if (tl_gate_stmt[i] == st) {
            if (drop)
                tl_gate_stmt[i] = NULL;
            return true;
        }
    }
    return false;
}

/* `st` stopped on a row with the gate held: it holds it until reset. */
static void gate_stmt_keep(sqlite3_stmt *st)
{
    for (int i = 0; i < GATE_STMTS; i++) {
        if (!tl_gate_stmt[i]) {
            tl_gate_stmt[i] = st;
            return;
        }
    }
    /* more than GATE_STMTS at once: none of wharf's statements does that */
    wh_log_error("sqlite: too many write statements left on a row by one thread");
    abort();
}

/* A statement is reset or finalized: the hold it kept, if any, ends (its commit is done). */
static void gate_stmt_end(sqlite3_stmt *st)
{
    if (st && tl_gate > 0 && gate_stmt_held(st, true))
        gate_leave();
}

/* Commits of the process, every connection (sq_data_version). */
static atomic_uint_fast64_t commits;

/* SQLite calls this after each commit, the write lock released. */
static int wal_committed(void *payload, sqlite3 *h, const char *name, int pages)
{
    (void)payload;
    (void)name;
    atomic_fetch_add(&commits, 1);
    writers_signal();
    /* what SQLite's automatic checkpoint would do (a hook of our own replaces it) */
    if (pages >= CHECKPOINT_FRAMES && tl_gate > 0)
        tl_ckpt_due = h; /* run as the transaction lets the gate go */
    else if (pages >= CHECKPOINT_FRAMES)
        checkpoint_alone(h); /* a commit outside the gate (none of ours): now, alone */
    return SQLITE_OK;
}

/* ---- connections ---- */

enum tx_id { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX_COUNT };

static const char *const tx_sql[TX_COUNT] = {
    [TX_BEGIN] = "BEGIN IMMEDIATE",
    [TX_COMMIT] = "COMMIT",
    [TX_ROLLBACK] = "ROLLBACK",
    [TX_SAVEPOINT] = "SAVEPOINT inner",
    [TX_RELEASE] = "RELEASE inner",
    [TX_ROLLBACK_TO] = "ROLLBACK TO inner",
};

struct db_dconn {
    sqlite3 *h;
    sqlite3_stmt *tx[TX_COUNT]; /* prepared on first use */
    bool gated;                 /* its write transaction holds the gate */
};

/* A driver statement is SQLite's own. */
#define ST(s) ((sqlite3_stmt *)(void *)(s))

/*
 * Sets the error message from `h` and classifies it: a unique or primary
 * key conflict, a foreign key, a full disk (SQLITE_FULL, or an I/O error
 * whose system errno says so), a lock not had in time, anything else.
 */
static int classify(sqlite3 *h)
{
    int ext = sqlite3_extended_errcode(h), rc = ext & 0xff;
    int sys = sqlite3_system_errno(h), code = WH_ERROR;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        code = WH_EEXISTS;
    else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        code = WH_ENOTFOUND;
    else if (rc == SQLITE_FULL || (rc == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)))
        code = WH_ENOSPC;
    else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        code = WH_EBUSY;
    return wh_error_set(code, "sqlite: %s", sqlite3_errmsg(h));
}

static int sq_exec(struct db_dconn *c, const char *sql)
{
    char *msg = NULL;
    writers_before();
    gate_enter(); /* a script may write */
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &msg);
    gate_leave();
    writers_after();
    if (rc == SQLITE_OK)
        return 0;
    int code = classify(c->h);
    if (msg)
        wh_error_set(code, "sqlite: %s", msg);
    sqlite3_free(msg);
    return code;
}

static void sq_close(struct db_dconn *c)
{
    if (!c)
        return;
    if (c->gated && tl_gate > 0) /* closed mid-transaction by its own thread */
        gate_leave();
    for (int i = 0; i < TX_COUNT; i++)
        sqlite3_finalize(c->tx[i]);
    sqlite3_close(c->h);
    free(c);
}

/*
 * Process-wide settings, before SQLite initializes: no memory statistics
 * (wharf reads none, and keeping them takes a global mutex around every
 * allocation of every connection). Once SQLite is initialized (another of its
 * users opened a database first) sqlite3_config refuses: the default stays.
 */
static pthread_once_t sq_setup_once = PTHREAD_ONCE_INIT;

static void sq_setup_run(void)
{
    gate_init();
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void wh_db_setup(void)
{
    pthread_once(&sq_setup_once, sq_setup_run);
}

static int sq_open(struct db_dconn **out, const char *path)
{
    wh_db_setup();
    struct db_dconn *c = wh_calloc(1, sizeof(*c));
    if (sqlite3_open_v2(path, &c->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        db_vfs_name()) != SQLITE_OK) {
        int rc = wh_error_set(WH_ERROR, "open %s: %s", path, sqlite3_errmsg(c->h));
        sq_close(c);
        return rc;
    }
    sqlite3_busy_handler(c->h, busy_wait, NULL);
    sqlite3_wal_hook(c->h, wal_committed, NULL);
    if (sq_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;") < 0) {
        sq_close(c);
        return WH_ERROR;
    }
    *out = c;
    return 0;
}

/* ---- statements ---- */

static int sq_prepare(struct db_dstmt **out, struct db_dconn *c, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        return wh_error_set(WH_ERROR, "sqlite: %s", sqlite3_errmsg(c->h));
    *out = (struct db_dstmt *)(void *)s;
    return 0;
}

static void sq_finalize(struct db_dstmt *s)
{
    sqlite3_finalize(ST(s));
    gate_stmt_end(ST(s));
}

static void sq_reset(struct db_dstmt *s)
{
    sqlite3_reset(ST(s));
    gate_stmt_end(ST(s));
    sqlite3_clear_bindings(ST(s));
}

static bool sq_busy(struct db_dstmt *s)
{
    return sqlite3_stmt_busy(ST(s)) != 0;
}

/* A number the SQL does not use answers SQLITE_RANGE, which is ignored (db_driver.h). */
static void sq_bind_i64(struct db_dstmt *s, int i, int64_t v)
{
    sqlite3_bind_int64(ST(s), i, v);
}

static void sq_bind_double(struct db_dstmt *s, int i, double v)
{
    sqlite3_bind_double(ST(s), i, v);
}

static void sq_bind_text(struct db_dstmt *s, int i, const char *v, ptrdiff_t len)
{
    if (!v)
        sqlite3_bind_null(ST(s), i);
    else if (len < 0)
        sqlite3_bind_text(ST(s), i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_text64(ST(s), i, v, (sqlite3_uint64)len, SQLITE_STATIC, SQLITE_UTF8);
}

static void sq_bind_blob(struct db_dstmt *s, int i, const void *v, size_t len)
{
    if (!v)
        sqlite3_bind_null(ST(s), i);
    else
        sqlite3_bind_blob64(ST(s), i, v, len, SQLITE_STATIC);
}

static void sq_bind_null(struct db_dstmt *s, int i)
{
    sqlite3_bind_null(ST(s), i);
}

static int sq_step(struct db_dstmt *s)
{
    sqlite3_stmt *st = ST(s);
    bool held = tl_gate > 0 && gate_stmt_held(st, false);
    bool enter = !held && gate_stmt_needs(st);
    if (enter)
        gate_enter();
    writers_before();
    int rc = sqlite3_step(st);
    writers_after();
    if (enter && rc == SQLITE_ROW)
        gate_stmt_keep(st);
    else if (enter)
        gate_leave();
    else if (held && rc != SQLITE_ROW)
        gate_stmt_end(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return classify(sqlite3_db_handle(ST(s)));
}

static int64_t sq_col_i64(struct db_dstmt *s, int col)
{
    return sqlite3_column_int64(ST(s), col);
}

static double sq_col_double(struct db_dstmt *s, int col)
{
    return sqlite3_column_double(ST(s), col);
}

static const char *sq_col_text(struct db_dstmt *s, int col)
{
    return (const char *)sqlite3_column_text(ST(s), col);
}

static size_t sq_col_bytes(struct db_dstmt *s, int col)
{
    return (size_t)sqlite3_column_bytes(ST(s), col);
}

static const void *sq_col_blob(struct db_dstmt *s, int col)
{
    return sqlite3_column_blob(ST(s), col);
}

static bool sq_col_is_null(struct db_dstmt *s, int col)
{
    return sqlite3_column_type(ST(s), col) == SQLITE_NULL;
}

static int64_t sq_changes(struct db_dconn *c)
{
    return sqlite3_changes(c->h);
}

/* ---- transactions ---- */

static int tx_run(struct db_dconn *c, enum tx_id id)
{
    if (!c->tx[id] && sqlite3_prepare_v3(c->h, tx_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &c->tx[id], NULL) != SQLITE_OK)
        return classify(c->h);
    if (id == TX_BEGIN && !c->gated) {
        gate_enter();
        c->gated = true;
    }
    writers_before();
    int rc = sqlite3_step(c->tx[id]);
    writers_after();
    if (id == TX_ROLLBACK)
        writers_signal(); /* the WAL hook sees commits only */
    int error = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : classify(c->h);
    sqlite3_reset(c->tx[id]);
    if (c->gated && sqlite3_get_autocommit(c->h)) {
        c->gated = false; /* ended (or never began) */
        gate_leave();
    }
    return error;
}

static bool sq_in_tx(struct db_dconn *c)
{
    return !sqlite3_get_autocommit(c->h);
}

static int sq_begin_write(struct db_dconn *c)
{
    writers_yield();
    return tx_run(c, TX_BEGIN);
}

static int sq_commit(struct db_dconn *c)
{
    return tx_run(c, TX_COMMIT);
}

static int sq_rollback(struct db_dconn *c)
{
    return sqlite3_get_autocommit(c->h) ? 0 : tx_run(c, TX_ROLLBACK);
}

static int sq_savepoint(struct db_dconn *c)
{
    return tx_run(c, TX_SAVEPOINT);
}

static int sq_release(struct db_dconn *c)
{
    return tx_run(c, TX_RELEASE);
}

static int sq_rollback_to(struct db_dconn *c)
{
    return tx_run(c, TX_ROLLBACK_TO);
}

/*
 * SQLite's data version counts per connection, and moves only when the
 * connection itself writes or starts reading after another has written; a
 * connection that has not read since the writer connection committed still
 * shows the old one. So the commits of every connection of the process are
 * counted in too (the WAL hook); the connection's own count then stands
 * only for what other processes (the CLI) committed.
 */
static uint64_t sq_data_version(struct db_dconn *c)
{
    unsigned v = 0;
    if (sqlite3_file_control(c->h, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK)
        return 0;
    uint64_t n = atomic_load(&commits);
    uint64_t r = wh_mix64(wh_mix64(n) ^ v);
    return r ? r : 1; /* never 0 ("unknown") */
}

/* ---- schema ---- */

static int sq_schema_version_get(struct db_dconn *c, int *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return classify(c->h);
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    int error = rc == SQLITE_ROW ? 0 : classify(c->h);
    sqlite3_finalize(s);
    return error;
}

/* Fails when a row refers to a row that does not exist (PRAGMA foreign_key_check). */
static int fk_check(struct db_dconn *c)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->h, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK)
        return classify(c->h);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        error = wh_error_set(WH_ERROR, "migration left a dangling reference in table %s",
                             (const char *)sqlite3_column_text(s, 0));
    else if (rc != SQLITE_DONE)
        error = classify(c->h);
    sqlite3_finalize(s);
    return error;
}

static int sq_schema_version_set(struct db_dconn *c, int v)
{
    char pragma[64];
    int error = fk_check(c);
    if (error < 0)
        return error;
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", v);
    return sq_exec(c, pragma);
}

/*
 * Foreign keys are off while migrations run (SQLite ignores the pragma
 * inside a transaction): a migration that rebuilds a table drops the old
 * one, and with foreign keys on that DROP would delete or refuse the rows
 * that refer to it. The references are checked before each commit instead
 * (sq_schema_version_set). One process opens a database file at a time, so
 * there is nothing to lock.
 */
static int sq_migrate_lock(struct db_dconn *c, bool enter)
{
    return sq_exec(c, enter ? "PRAGMA foreign_keys=OFF" : "PRAGMA foreign_keys=ON");
}

const struct db_driver db_sqlite_driver = {
    .version = DB_DRIVER_VERSION,
    .one_writer = true,
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .reset = sq_reset,
    .busy = sq_busy,
    .bind_i64 = sq_bind_i64,
    .bind_double = sq_bind_double,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .col_i64 = sq_col_i64,
    .col_double = sq_col_double,
    .col_text = sq_col_text,
    .col_bytes = sq_col_bytes,
    .col_blob = sq_col_blob,
    .col_is_null = sq_col_is_null,
    .changes = sq_changes,
    .in_tx = sq_in_tx,
    .begin_write = sq_begin_write,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .data_version = sq_data_version,
    .schema_version_get = sq_schema_version_get,
    .schema_version_set = sq_schema_version_set,
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .migrate_lock = sq_migrate_lock,
};
