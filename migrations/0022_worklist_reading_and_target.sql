-- A worklist item out of target keeps what was read and what was aimed for apart from its
-- English `detail`, so that each screen can say them in its reader's language
-- ("152/96 mmHg" against "140/90 mmHg"; for glucose with the context as a code).
ALTER TABLE worklist_items ADD COLUMN reading TEXT;
ALTER TABLE worklist_items ADD COLUMN target TEXT;
