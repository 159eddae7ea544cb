// Which schema changes of an action a rollback can reverse, from what the DDL event triggers
// recorded (airlock.ddl). Pure: no connection, so it is unit-tested on the records PostgreSQL
// writes for each statement.
//
// What the event triggers report (PostgreSQL 16), and what undoes it:
//   CREATE TABLE/INDEX/VIEW/SEQUENCE  end records, object_type table|index|view|sequence
//                                     (a CREATE TABLE also reports its serial sequences, its
//                                     key indexes and an ALTER SEQUENCE ... OWNED BY)
//                                     -> dropped again ("drop_created")
//   ALTER TABLE                       end record 'table' <table>, or 'table column'
//                                     <table>.<col> (RENAME COLUMN); drop records 'table column'
//                                     <table>.<col>, 'table constraint' <name> on <table>,
//                                     'default value' for <table>.<col>
//                                     -> the whole table replaced by its pre-image
//                                     ("replace_table")
//   DROP TABLE/VIEW/INDEX/SEQUENCE    drop records -> recreated from a pre-image
// Everything else (functions, types, schemas, RENAME of a table, ...) is not undone.
#pragma once

#include <string>
#include <vector>

#include "connectors/postgres/effect.h"
#include "connectors/postgres/undo.h"

namespace airlock::pg {

// True if `identity` (an object identity the event trigger reported for an ALTER TABLE)
// names the table `table` or a part of it (column, constraint, default).
bool ConcernsTable(const std::string& identity, const std::string& table);

// The objects the statement created that a rollback drops, in capture order (op
// "drop_created", no sql or fingerprint yet).
std::vector<DdlUndo> CreatedObjects(const std::vector<CapturedDdl>& ddl);

// The captured records that nothing in `undo` reverses, each as "<op> <object>" (DdlOpName):
// when one is left, the action's undo is irreversible.
std::vector<std::string> NotUndone(const std::vector<CapturedDdl>& ddl, const UndoData& undo);

}  // namespace airlock::pg
