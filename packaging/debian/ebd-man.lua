-- pandoc filter: docs/ebd.md as a manual page, ebd(8).
--  * NAME becomes a plain "ebd - ..." line, the form whatis/lexgrog read;
--  * the OPTIONS table (option | default | meaning) becomes a list of
--    tagged paragraphs: its columns do not fit in 80 columns of a terminal.

local in_name = false

function Header(h)
  in_name = (pandoc.utils.stringify(h) == 'NAME')
end

function Para(p)
  if not in_name then
    return nil
  end
  in_name = false
  local text = pandoc.utils.stringify(p):gsub('^(%S+) — ', '%1 - ')
  return pandoc.Para({pandoc.Str(text)})
end

local function inlines(blocks)
  return pandoc.utils.blocks_to_inlines(blocks)
end

function Table(t)
  local s = pandoc.utils.to_simple_table(t)
  local head = {}
  for i, cell in ipairs(s.headers) do
    head[i] = pandoc.utils.stringify(cell)
  end
  if head[1] ~= 'option' or head[2] ~= 'default' or head[3] ~= 'meaning' then
    return nil
  end
  local items = {}
  for _, row in ipairs(s.rows) do
    local text = inlines(row[3])
    if pandoc.utils.stringify(row[2]) ~= '' then
      text:extend({pandoc.Str(' (default:'), pandoc.Space()})
      text:extend(inlines(row[2]))
      text:insert(pandoc.Str(')'))
    end
    table.insert(items, {inlines(row[1]), {pandoc.Para(text)}})
  end
  return pandoc.DefinitionList(items)
end
