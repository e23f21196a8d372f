package scripting

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// openDB installs the `db` module: query, exec and tx on the databases the
// endpoint is granted. Each call suspends the handler while the statement
// runs (suspend.go); failures raise Lua errors.
func (st *state) openDB() {
	st.setModule("db", map[string]lua.LGFunction{
		"query": func(L *lua.LState) int {
			d := st.database(L, 1)
			return st.dbQuery(L, d.Name(), d, L.CheckString(2), 3)
		},
		"exec": func(L *lua.LState) int {
			d := st.database(L, 1)
			return st.dbExec(L, d.Name(), d, L.CheckString(2), 3)
		},
		"tx": func(L *lua.LState) int {
			d := st.database(L, 1)
			return st.dbTx(L, d, L.CheckFunction(2))
		},
	})
	mt := st.L.NewTypeMetatable(txTypeName)
	mt.RawSetString("__index", st.L.SetFuncs(st.L.NewTable(), map[string]lua.LGFunction{
		"query": func(L *lua.LState) int {
			tx := checkTx(L)
			return st.dbQuery(L, tx.db, tx.q, L.CheckString(2), 3)
		},
		"exec": func(L *lua.LState) int {
			tx := checkTx(L)
			return st.dbExec(L, tx.db, tx.q, L.CheckString(2), 3)
		},
	}))
	mt.RawSetString("__tostring", st.L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("db transaction"))
		return 1
	}))
}

// txTypeName names the metatable of the tx value db.tx hands its function.
const txTypeName = "moongate.db.tx"

// luaTx is what a tx value holds: the transaction, while it is open.
type luaTx struct {
	db   string // the database's name
	q    db.Querier
	done bool
}

// checkTx returns the open transaction that argument 1 (the method's self)
// is, raising an error for anything else or a transaction that has ended.
func checkTx(L *lua.LState) *luaTx {
	ud, ok := L.Get(1).(*lua.LUserData)
	tx, _ := func() (*luaTx, bool) {
		if !ok {
			return nil, false
		}
		t, ok := ud.Value.(*luaTx)
		return t, ok
	}()
	if tx == nil {
		L.ArgError(1, "expected a db transaction (call tx:query, with a colon)")
	}
	if tx.done {
		L.RaiseError("db transaction used after db.tx returned")
	}
	return tx
}

// database returns the database argument n names, raising an error when
// the endpoint is not granted it.
func (st *state) database(L *lua.LState, n int) db.DB {
	name := L.CheckString(n)
	if !slices.Contains(st.gen.ep.Databases, name) {
		L.RaiseError("db %q is not granted to endpoint %s (list it under the endpoint's databases: in the config)", name, st.gen.ep.Path)
	}
	if st.svc.databases == nil {
		L.RaiseError("db %q is not open: no databases are configured", name)
	}
	d, ok := st.svc.databases.Get(name)
	if !ok {
		L.RaiseError("db %q is not open (is it declared under databases: in the config?)", name)
	}
	return d
}

// dbQuery runs db.query or tx:query: the statement's rows, as an array of
// tables keyed by column name.
func (st *state) dbQuery(L *lua.LState, name string, q db.Querier, sql string, first int) int {
	args := dbArgs(L, first)
	var rows *db.Rows
	var err error
	st.dbCall(name, func(ctx context.Context) error {
		rows, err = q.Query(ctx, sql, args...)
		return err
	})
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	L.Push(rowsToLua(L, rows))
	return 1
}

// dbExec runs db.exec or tx:exec: {rows = affected, last_id = id}.
func (st *state) dbExec(L *lua.LState, name string, q db.Querier, sql string, first int) int {
	args := dbArgs(L, first)
	var res db.Result
	var err error
	st.dbCall(name, func(ctx context.Context) error {
		res, err = q.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	t := L.CreateTable(0, 2)
	t.RawSetString("rows", intToLua(res.RowsAffected))
	t.RawSetString("last_id", intToLua(res.LastInsertID))
	L.Push(t)
	return 1
}

// dbTx runs db.tx(name, fn): fn(tx) in a transaction, committed when fn
// returns, rolled back when it raises (the error goes on to the caller).
// The handler is suspended while the transaction begins and commits, and
// during each statement fn runs; fn itself runs on the state.
func (st *state) dbTx(L *lua.LState, d db.DB, fn *lua.LFunction) int {
	var luaErr error
	r := st.suspend()
	err := d.Tx(context.Background(), func(tx db.Tx) error {
		st.reclaim(r)
		luaErr = st.runTx(L, d.Name(), tx, fn)
		r = st.suspend()
		return luaErr
	})
	st.reclaim(r)
	if luaErr != nil {
		if apiErr, ok := luaErr.(*lua.ApiError); ok {
			L.Error(apiErr.Object, 0) // fn's own error, as it raised it
		}
		L.RaiseError("%s", luaErr.Error())
	}
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	return 0
}

// runTx calls fn(tx) on L, protected, and marks tx ended after.
func (st *state) runTx(L *lua.LState, name string, tx db.Tx, fn *lua.LFunction) error {
	t := &luaTx{db: name, q: tx}
	ud := L.NewUserData()
	ud.Value = t
	ud.Metatable = L.GetTypeMetatable(txTypeName)
	defer func() { t.done = true }()
	L.Push(fn)
	L.Push(ud)
	return L.PCall(1, 0, nil)
}

// dbCall runs call, a statement on database name, with the handler
// suspended, and counts it in the endpoint's metrics.
func (st *state) dbCall(name string, call func(context.Context) error) {
	st.await(func() {
		begin := time.Now()
		err := call(context.Background())
		st.svc.metrics.DBCall(name, time.Since(begin), err)
	})
}

// dbArgs converts the statement arguments from index first on to the
// values the db package takes, raising an error for a value that is not
// one (a table, a function): values go only through placeholders.
func dbArgs(L *lua.LState, first int) []any {
	n := L.GetTop()
	if n < first {
		return nil
	}
	args := make([]any, 0, n-first+1)
	for i := first; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case *lua.LNilType:
			args = append(args, nil)
		case lua.LBool:
			args = append(args, bool(v))
		case lua.LNumber:
			args = append(args, numberArg(float64(v)))
		case lua.LString:
			args = append(args, string(v))
		default:
			if luaval.IsNull(v) {
				args = append(args, nil)
				continue
			}
			L.ArgError(i, fmt.Sprintf("a statement takes nil, booleans, numbers and strings, not %s (encode tables with json.encode)", v.Type()))
		}
	}
	return args
}

// numberArg gives an integral number as an int64, so that it binds as an
// integer, and any other as a float64.
func numberArg(f float64) any {
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return f
}

// maxExactInt is the largest integer a Lua number (a float64) holds exactly.
const maxExactInt = 1 << 53

// intToLua returns n as a number when a Lua number holds it exactly, and as
// its decimal string otherwise.
func intToLua(n int64) lua.LValue {
	if n > maxExactInt || n < -maxExactInt {
		return lua.LString(strconv.FormatInt(n, 10))
	}
	return lua.LNumber(n)
}

// rowsToLua returns rows as an array of tables keyed by column name; SQL
// NULL is json.null, so that every row has a key for each column.
func rowsToLua(L *lua.LState, rows *db.Rows) *lua.LTable {
	out := L.CreateTable(len(rows.Values), 0)
	for _, values := range rows.Values {
		row := L.CreateTable(0, len(rows.Columns))
		for i, col := range rows.Columns {
			row.RawSetString(col, valueToLua(L, values[i]))
		}
		out.Append(row)
	}
	return luaval.Array(L, out)
}

// valueToLua converts a value the db package read (see its doc for the
// types) to Lua.
func valueToLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return luaval.Null(L)
	case int64:
		return intToLua(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []byte:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case time.Time:
		return lua.LString(v.UTC().Format(time.RFC3339Nano))
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(valueToLua(L, e))
		}
		return luaval.Array(L, t)
	default:
		return lua.LString(fmt.Sprint(v))
	}
}
